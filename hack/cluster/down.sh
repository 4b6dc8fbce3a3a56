#!/usr/bin/env bash
# make cluster-down: stops every component of the local cluster and removes its state
# (or deletes the kind cluster). Safe to run when nothing is up.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

if [[ -f $KUBECONFIG_ADMIN ]] && grep -q "kind-kubecircus" "$KUBECONFIG_ADMIN" 2>/dev/null; then
  kind delete cluster --name kubecircus
  rm -rf "$OUT"
  exit 0
fi

# Workloads first (the kubelet would restart them), then the node, then the control plane.
stop_daemon kubelet
if [[ -S $CONTAINERD_SOCK ]]; then
  for task in $(ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks kill -s KILL "$task" >/dev/null 2>&1
  done
  sleep 1
fi
for name in hostpath-provisioner kube-router netpol kube-proxy containerd kube-scheduler kube-controller-manager kube-apiserver etcd; do
  stop_daemon "$name"
done
pkill -f "containerd-shim-runc-v2 -namespace k8s.io -id .* -address $CONTAINERD_SOCK" 2>/dev/null

# Mounts left by the kubelet and containerd, deepest first.
if [[ -d $STATE ]]; then
  grep -o " $STATE[^ ]*" /proc/mounts | sort -r | while read -r mnt; do umount -l "$mnt" 2>/dev/null; done
fi

# Network: rules and ipsets of kube-proxy, kube-router, the guard and the CNI plug-in; the
# pods' veths. (KCNP: the hand-written enforcer that kube-router replaced.)
remove_chains 'KUBE|KCNP|KUBECIRCUS|CNI-HOSTPORT|CNI-DN'
for set in $(ipset list -n 2>/dev/null | grep -E '^(KUBE|kube-router|kubecircus-)'); do ipset destroy "$set" 2>/dev/null; done
rm -f /usr/lib/cni/kubecircus-quarantine
ip route del blackhole "$POD_CIDR" 2>/dev/null
for link in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^veth'); do
  ip link del "$link" 2>/dev/null
done
ip addr del "$NODE_IP/32" dev lo 2>/dev/null

rm -rf "$STATE" "$OUT"
log "stopped and removed $STATE"
