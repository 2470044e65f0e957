#!/usr/bin/env bash
# Install what disco needs on Debian/Ubuntu, skipping what is already there:
#   haproxy, socat and prometheus from the distribution, Consul from Debian bullseye's package
#   (scripts/fetch-consul.sh), and a virtualenv in .venv with disco and its test tools
#   (supervisor comes from PyPI with disco).  Safe to run again: it only fills gaps.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

PYTHON=${PYTHON:-python3}
missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v socat >/dev/null || missing+=(socat)
command -v prometheus >/dev/null || missing+=(prometheus)  # the metrics test scrapes `disco watch --listen`
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v "$PYTHON" >/dev/null || missing+=(python3)
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "install-deps: disco needs Python >= 3.11 ($PYTHON is $("$PYTHON" -V 2>&1))" >&2; exit 1; }

if ! command -v consul >/dev/null && [[ ! -x .cache/consul/bin/consul ]]; then
  echo "install-deps: fetching Consul from Debian bullseye's package" >&2
  # apt needs the bullseye lists: as root directly, else through sudo.
  if [[ $(id -u) -eq 0 ]]; then scripts/fetch-consul.sh >/dev/null; else sudo scripts/fetch-consul.sh >/dev/null; fi
fi

# A Docker engine for the end-to-end tests: start one when none answers.
if ! docker info >/dev/null 2>&1; then
  echo "install-deps: starting dockerd" >&2
  mkdir -p .cache
  sudo_if_needed sh -c 'nohup dockerd > .cache/dockerd.log 2>&1 &'
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "install-deps: dockerd did not start; see .cache/dockerd.log" >&2; exit 1; }
fi

if [[ ! -x .venv/bin/python ]]; then "$PYTHON" -m venv .venv; fi
stamp=.venv/.disco-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi
