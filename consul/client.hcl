# The client agent inside the haproxy and webapp images (with gossip.hcl): joins the servers,
# answers on 127.0.0.1 only, leaves the cluster when the container stops.
retry_join         = ["consul", "consul-2", "consul-3"]
client_addr        = "127.0.0.1"
leave_on_terminate = true

# disco watch follows each service with a long poll of its own to this agent (--watch-mode auto
# reads this limit from /v1/agent/self and falls back to the catalog-wide watch past it): room for
# thousands of services; the agent keeps their queries to the servers on its own connections.
limits {
  http_max_conns_per_client = 4096
}
