#!/usr/bin/env bash
# Install what the benchmarks (make bench) need on top of scripts/install-deps.sh, skipping what is
# already there: wrk (the load generator of bench/compare.py) from the distribution.
# Safe to run again: it only fills gaps.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v wrk >/dev/null || missing+=(wrk)
if ((${#missing[@]})); then
  echo "install-bench-deps: installing ${missing[*]}" >&2
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
