# The client agent inside the haproxy and webapp images (with gossip.hcl): joins the servers,
# answers on 127.0.0.1 only, leaves the cluster when the container stops.
retry_join         = ["consul", "consul-2", "consul-3"]
client_addr        = "127.0.0.1"
leave_on_terminate = true
