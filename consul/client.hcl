# The client agent inside the haproxy and webapp images: joins the servers, answers on
# 127.0.0.1 only, leaves the cluster when the container stops.
retry_join         = ["consul", "consul-2", "consul-3"]
client_addr        = "127.0.0.1"
data_dir           = "/tmp/consul"
leave_on_terminate = true
disable_update_check = true
gossip_lan {
  probe_interval = "500ms"
  probe_timeout  = "250ms"
  suspicion_mult = 3
}
