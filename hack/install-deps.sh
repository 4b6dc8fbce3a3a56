#!/usr/bin/env bash
# System packages the test suite and benchmarks use, from Debian's archive:
#   dcm2niix  - the peer converter the converter's tests and benchmark compare with
#   time      - GNU time, for the benchmark's peak-memory figures
#   python3-venv - `python3 -m venv` for .venv (Debian splits it out)
set -euo pipefail
packages=(dcm2niix time python3-venv)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all present (${packages[*]})"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: please install as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
