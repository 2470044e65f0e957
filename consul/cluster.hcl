# One of three Consul servers (compose profile "cluster": consul, consul-2, consul-3).
server           = true
bootstrap_expect = 3
retry_join       = ["consul", "consul-2", "consul-3"]
ui               = true
client_addr      = "0.0.0.0"
data_dir         = "/tmp/consul"
disable_update_check = true
gossip_lan {
  probe_interval = "500ms"
  probe_timeout  = "250ms"
  suspicion_mult = 3
}
