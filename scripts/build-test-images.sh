#!/usr/bin/env bash
# Images the end-to-end tests need when no registry is reachable (test harness only):
#  - debian:bookworm-slim, built with debootstrap (minbase) and `docker import`, trusting this
#    machine's CA bundle (copied under a name of its own; PIP_CERT etc. point at it);
#  - disco-test/consul:1.8.7, a stand-in for the official Consul image: /bin/consul from Debian
#    bullseye's package (scripts/fetch-consul.sh).
# The product's Dockerfiles are untouched: with public registries they use the real images.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  mirror=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
  [[ -n "$mirror" ]] || mirror=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | sed -E 's/\[[^]]*\]//' | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  echo "build-test-images: debootstrap bookworm (minbase)" >&2
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  mkdir -p "$rootfs/etc/ssl"
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/harness-ca.crt"
  tar -C "$rootfs" -c . | docker import \
    -c 'ENV PIP_CERT=/etc/ssl/harness-ca.crt REQUESTS_CA_BUNDLE=/etc/ssl/harness-ca.crt SSL_CERT_FILE=/etc/ssl/harness-ca.crt' \
    -c 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
fi

if ! docker image inspect disco-test/consul:1.8.7 >/dev/null 2>&1; then
  consul=$(command -v consul || scripts/fetch-consul.sh)
  ctx=$(mktemp -d)
  cp "$consul" "$ctx/consul"
  printf 'FROM debian:bookworm-slim\nCOPY consul /bin/consul\n' > "$ctx/Dockerfile"
  docker build -q -t disco-test/consul:1.8.7 "$ctx" >/dev/null
  rm -rf "$ctx"
fi
