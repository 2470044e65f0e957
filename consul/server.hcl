# One Consul server with its UI (the compose file's default); with gossip.hcl.
server           = true
bootstrap_expect = 1
ui               = true
client_addr      = "0.0.0.0"
