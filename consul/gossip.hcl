# Shared by every agent (servers and clients): failure detection as fast as Consul allows
# on one host without false alarms. Probe every 500 ms, 250 ms to answer, suspicion lasts
# 3 x log(N) probe intervals (defaults: 1 s, 500 ms, 4).
gossip_lan {
  probe_interval = "500ms"
  probe_timeout  = "250ms"
  suspicion_mult = 3
}
disable_update_check = true
data_dir             = "/tmp/consul"
