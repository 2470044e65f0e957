#!/bin/sh
# Give the Docker socket's group (whatever its number on this host) to the `registrator` user only,
# then run supervisord (Consul agent as `disco`, disco registrator as `registrator`).
set -e
sock=/var/run/docker.sock
if [ -S "$sock" ]; then
  gid=$(stat -c %g "$sock")
  if [ "$gid" = 0 ]; then
    echo "entrypoint: $sock belongs to group root; disco registrator gets group root to read it" >&2
  fi
  group=$(getent group "$gid" | cut -d: -f1)
  if [ -z "$group" ]; then
    groupadd --system --gid "$gid" docker-host
    group=docker-host
  fi
  usermod -a -G "$group" registrator
else
  echo "entrypoint: no Docker socket at $sock (mount it, or set DOCKER_HOST in DISCO_REGISTRATOR_ARGS' environment)" >&2
fi
exec supervisord -c /etc/supervisord.conf
