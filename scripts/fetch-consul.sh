#!/usr/bin/env bash
# Fetch Consul from Debian bullseye's `consul` package into a project cache.
#
# Consul is not in Debian bookworm, but bullseye's package (1.8.7, UI included)
# is served by the same Debian mirror this machine already uses.  We point apt at
# a bullseye source list of our own (never touching the system's lists), download
# the .deb and extract only the binary.  The mirror address is read from the
# machine's apt configuration, so nothing else is contacted.
#
# Usage: scripts/fetch-consul.sh [CACHE_DIR]   -> prints the path of the binary
set -euo pipefail

cache=${1:-"${DISCO_CACHE:-$(cd "$(dirname "$0")/.." && pwd)/.cache}"}
bin="$cache/consul/bin/consul"
if [[ -x "$bin" ]]; then echo "$bin"; exit 0; fi

apt_dir="$cache/apt-bullseye"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$cache/consul/bin"

# The first Debian main archive URI the machine is configured with (deb822 or one-line format).
mirror=$(
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | sed -E 's/\[[^]]*\]//' | awk '{print $2}'; } 2>/dev/null \
  | grep -E '/debian/?$' | head -n1 || true
)
if [[ -z "$mirror" ]]; then
  echo "fetch-consul: no Debian mirror found in /etc/apt; add one, or put a consul binary at $bin" >&2
  exit 1
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] $mirror bullseye main" > "$apt_dir/sources.list"

opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o "Dir::Etc::sourceparts=-"
      -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::archives=$apt_dir/archives"
      -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
apt-get "${opts[@]}" -qq update >&2
(cd "$apt_dir/archives" && apt-get "${opts[@]}" -qq download consul >&2)
deb=$(ls "$apt_dir"/archives/consul_*.deb | head -n1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp"
install -m 0755 "$tmp/usr/bin/consul" "$bin"
echo "$bin"
