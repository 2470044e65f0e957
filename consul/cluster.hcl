# One of three Consul servers (compose profile "cluster": consul, consul-2, consul-3); with gossip.hcl.
server           = true
bootstrap_expect = 3
retry_join       = ["consul", "consul-2", "consul-3"]
ui               = true
client_addr      = "0.0.0.0"
