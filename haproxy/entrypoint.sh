#!/bin/sh
# Render the first config (every service, no instances yet) before supervisord starts HAProxy.
set -e
su disco -s /bin/sh -c "PATH=$PATH disco watch --config /etc/disco/watch.toml --service '$DISCO_SERVICE' \
  --bootstrap --once"
exec supervisord -c /etc/supervisord.conf
