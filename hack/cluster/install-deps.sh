#!/usr/bin/env bash
# Debian packages the local cluster runs on. Kubernetes, etcd 3.5, CoreDNS, MinIO, Helm,
# kube-router and the volume provisioner are built from Go modules instead (build-tools.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
if command -v kind >/dev/null && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  exit 0  # kind brings its own node image
fi
packages=(containerd runc containernetworking-plugins iptables conntrack socat
  ipset iproute2 openssl curl buildah busybox-static catatonit debootstrap golang-go)
if command -v go >/dev/null || [[ -x /usr/local/go/bin/go ]]; then
  packages=("${packages[@]/golang-go/}")
fi
missing=()
for p in "${packages[@]}"; do
  [[ -n $p ]] || continue
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
[[ $(id -u) -eq 0 ]] || die "install as root: apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
log "installed ${missing[*]}"
