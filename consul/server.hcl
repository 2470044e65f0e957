# One Consul server with its UI (the compose file's default).
server           = true
bootstrap_expect = 1
ui               = true
client_addr      = "0.0.0.0"
data_dir         = "/tmp/consul"
disable_update_check = true
# Failure detection as fast as Consul allows on one host without false alarms:
# probe every 500 ms, 250 ms to answer, suspicion = 3 x log(N) probe intervals.
gossip_lan {
  probe_interval = "500ms"
  probe_timeout  = "250ms"
  suspicion_mult = 3
}
