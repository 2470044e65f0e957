#!/bin/sh
# Render the first config (every service, no instances yet) before supervisord starts HAProxy.
set -e
su disco -s /bin/sh -c "PATH=$PATH disco watch --service '$DISCO_SERVICE' --output /etc/haproxy/haproxy.cfg \
  --bootstrap --once --set frontend_port=80 --set stats_port=1936 --set admin_socket=/run/haproxy/admin.sock \
  --set run_as=haproxy --set socket_owner=disco"
exec supervisord -c /etc/supervisord.conf
