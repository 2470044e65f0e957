#!/usr/bin/env bash
# Install what the benchmarks (make bench) need on top of scripts/install-deps.sh, skipping what is
# already there: wrk (the load generator of bench/compare.py) from the distribution, and the `bench`
# extra (matplotlib, for bench/plots.py) into .venv.
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

# The plots: matplotlib, from the `bench` extra of pyproject.toml (.venv comes from scripts/install-deps.sh).
if [[ ! -x .venv/bin/python ]]; then
  echo "install-bench-deps: no .venv; run make deps (scripts/install-deps.sh) first" >&2; exit 1
fi
if ! .venv/bin/python -c 'import matplotlib' 2>/dev/null; then
  echo "install-bench-deps: installing matplotlib (the bench extra) into .venv" >&2
  .venv/bin/pip install -q --disable-pip-version-check 'matplotlib>=3.7'
fi
