#!/usr/bin/env bash
# make cluster-up: a real single-node Kubernetes cluster on this machine, or kind where Docker is.
#
# Here: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet on containerd+runc,
# ptp CNI networking, kube-proxy (iptables), kube-router (firewall only: the NetworkPolicy
# enforcer) and a volume provisioner (node directories) run as host processes; CoreDNS runs as a
# pod from a locally built image. State lives in $KUBECIRCUS_CLUSTER_STATE (default
# /var/lib/kubecircus-cluster); the admin kubeconfig
# is written to .cluster/kubeconfig and kubectl/helm to .cluster/bin/. Idempotent: a running
# cluster is left as it is, a stopped one is restarted from its state.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pki.sh"

use_kind() {
  command -v kind >/dev/null && command -v docker >/dev/null && docker info >/dev/null 2>&1
}

kind_up() {
  mkdir -p "$OUT/bin"
  [[ $'\n'$(kind get clusters 2>/dev/null)$'\n' == *$'\nkubecircus\n'* ]] ||
    kind create cluster --config "$REPO/kind-config.yaml" --wait 180s
  kind get kubeconfig --name kubecircus > "$KUBECONFIG_ADMIN"
  "$(dirname "$0")/build-tools.sh" kindcheck  # the kind-config test's checker
  ln -sf "$(command -v kubectl)" "$OUT/bin/kubectl"
  command -v helm >/dev/null && ln -sf "$(command -v helm)" "$OUT/bin/helm"
  log "kind cluster ready; KUBECONFIG=$KUBECONFIG_ADMIN"
}

preflight() {
  [[ $(id -u) -eq 0 ]] || die "the local cluster needs root (containerd, kubelet, iptables)"
  local missing=()
  for tool in containerd runc iptables iptables-restore conntrack openssl buildah ctr debootstrap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [[ -x /usr/lib/cni/ptp && -x /usr/lib/cni/host-local ]] || missing+=("containernetworking-plugins")
  [[ ${#missing[@]} -eq 0 ]] || die "missing ${missing[*]}: run 'make cluster-deps'"
}

host_network() {
  # not `ip … | grep -q`: under pipefail, grep leaving early can fail the pipe and re-add the address
  [[ -n $(ip -4 -o addr show dev lo to "$NODE_IP/32") ]] || ip addr add "$NODE_IP/32" dev lo
  sysctl -qw net.ipv4.ip_forward=1
  # No route out: pods may talk to pods, services and the node, never past the machine. No
  # masquerading either (the ptp plug-in's ipMasq is off). The guard sits in the mangle table,
  # which the kernel consults before the filter table: kube-router keeps its own jump first in
  # filter FORWARD and ACCEPTs what a policy allows there, so a guard in filter could be passed by.
  if iptables -w -C FORWARD -j KUBECIRCUS-GUARD 2>/dev/null; then  # where older versions put it
    iptables -w -D FORWARD -j KUBECIRCUS-GUARD
    iptables -w -F KUBECIRCUS-GUARD && iptables -w -X KUBECIRCUS-GUARD
  fi
  # Pods' host-side interfaces are the ptp plug-in's veth*: a forwarded packet from a pod may
  # only go into another pod, and only pods may send one into a pod (whatever the addresses
  # say: an unassigned pod address or a spoofed source is caught by the interface).
  iptables -w -t mangle -N KUBECIRCUS-GUARD 2>/dev/null || true
  iptables -w -t mangle -F KUBECIRCUS-GUARD
  iptables -w -t mangle -A KUBECIRCUS-GUARD -i veth+ ! -o veth+ -j DROP
  iptables -w -t mangle -A KUBECIRCUS-GUARD ! -i veth+ -o veth+ -j DROP
  iptables -w -t mangle -A KUBECIRCUS-GUARD -s "$POD_CIDR" ! -d "$POD_CIDR" -j DROP
  iptables -w -t mangle -C FORWARD -j KUBECIRCUS-GUARD 2>/dev/null ||
    iptables -w -t mangle -I FORWARD 1 -j KUBECIRCUS-GUARD
  # An address of the pod range that no pod holds goes nowhere (each pod has its own /32 route).
  ip route replace blackhole "$POD_CIDR"
  # New interfaces (the pods' veths) drop packets whose source would not be routed back through
  # them: a pod cannot spoof another's address. The machine's own interfaces keep their setting.
  sysctl -qw net.ipv4.conf.default.rp_filter=1
  # A new pod's quarantine (hack/cluster/cni/kubecircus-quarantine): the CNI plug-in puts its
  # address in this set for its first seconds; the raw table drops it before conntrack sees it.
  ipset -exist create kubecircus-quarantine hash:ip timeout 2  # each entry carries its own
  iptables -w -t raw -N KUBECIRCUS-QUARANTINE 2>/dev/null || true
  iptables -w -t raw -F KUBECIRCUS-QUARANTINE
  iptables -w -t raw -A KUBECIRCUS-QUARANTINE -m set --match-set kubecircus-quarantine src -j DROP
  iptables -w -t raw -A KUBECIRCUS-QUARANTINE -m set --match-set kubecircus-quarantine dst -j DROP
  for hook in PREROUTING OUTPUT; do
    iptables -w -t raw -C "$hook" -j KUBECIRCUS-QUARANTINE 2>/dev/null ||
      iptables -w -t raw -I "$hook" 1 -j KUBECIRCUS-QUARANTINE
  done
  # containerd looks for CNI plug-ins in one folder, Debian's: ours joins them there.
  cmp -s "$(dirname "$0")/cni/kubecircus-quarantine" /usr/lib/cni/kubecircus-quarantine ||
    install -m 0755 "$(dirname "$0")/cni/kubecircus-quarantine" /usr/lib/cni/kubecircus-quarantine
}

# Components watch their config files (kube-proxy exits when its file is rewritten), so a file
# is replaced only when its content really changes.
write_if_changed() {
  local file=$1 new
  new=$(cat)
  [[ -f $file && $(cat "$file") == "$new" ]] && return 0
  printf '%s\n' "$new" > "$file"
}

write_configs() {
  mkdir -p "$RUN" "$STATE/cni/net.d" "$STATE/kubelet" "$STATE/etcd"
  write_if_changed "$STATE/cni/net.d/10-kubecircus.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "kubecircus",
  "plugins": [
    {"type": "ptp", "ipMasq": false, "mtu": 1500,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$NODE_POD_CIDR"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$STATE/cni/ipam"}},
    {"type": "kubecircus-quarantine", "seconds": 3, "capabilities": {"io.kubernetes.cri.pod-annotations": true}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  write_if_changed "$STATE/containerd.toml" <<TOML
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/kubecircus/pause:dev"
  # This machine withholds CAP_SYS_RESOURCE even from root, so no process may lower its
  # oom_score_adj (the kubelet asks -998 for sandboxes): clamp to containerd's own value.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
TOML
  touch "$STATE/kubelet/resolv.conf"  # empty: pods with dnsPolicy Default get no upstream resolver
  write_if_changed "$STATE/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: cluster.local
resolvConf: $STATE/kubelet/resolv.conf
failSwapOn: false
serializeImagePulls: false
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
podPidsLimit: 4096
YAML
  write_if_changed "$STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kube-proxy.conf}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack: {maxPerCore: 0}
oomScoreAdj: 0
nodePortAddresses: [$NODE_IP/32]
YAML
}

start_control_plane() {
  start_daemon etcd "$BIN/etcd" --name kubecircus --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster kubecircus=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
  wait_for 60 etcd curl -sf http://127.0.0.1:2381/health
  start_daemon kube-apiserver "$KUBE" kube-apiserver \
    --advertise-address "$NODE_IP" --bind-address "$NODE_IP" --secure-port 6443 \
    --etcd-servers http://127.0.0.1:2379 \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --client-ca-file "$PKI/ca.crt" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --profiling=false
  wait_for 120 kube-apiserver "$KUBE" kubectl --kubeconfig "$STATE/admin.conf" get --raw /readyz
  start_daemon kube-controller-manager "$KUBE" kube-controller-manager \
    --kubeconfig "$STATE/controller-manager.conf" \
    --authentication-kubeconfig "$STATE/controller-manager.conf" \
    --authorization-kubeconfig "$STATE/controller-manager.conf" \
    --bind-address 127.0.0.1 --leader-elect=false \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
    --use-service-account-credentials=true --allocate-node-cidrs=false \
    --controllers '*,bootstrapsigner,tokencleaner'
  start_daemon kube-scheduler "$KUBE" kube-scheduler \
    --kubeconfig "$STATE/scheduler.conf" \
    --authentication-kubeconfig "$STATE/scheduler.conf" \
    --authorization-kubeconfig "$STATE/scheduler.conf" \
    --bind-address 127.0.0.1 --leader-elect=false
}

start_node() {
  start_daemon containerd containerd --config "$STATE/containerd.toml"
  wait_for 60 containerd ctr --address "$CONTAINERD_SOCK" version
  "$(dirname "$0")/images.sh" --base-only
  start_daemon kubelet "$KUBE" kubelet --config "$STATE/kubelet/config.yaml" \
    --kubeconfig "$STATE/kubelet.conf" --root-dir "$STATE/kubelet/root" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
  start_daemon kube-proxy "$KUBE" kube-proxy --config "$STATE/kube-proxy.yaml"
  start_firewall
}

# kube-router, firewall only, enforces NetworkPolicy with iptables and ipset. It reads its Node
# for the node address, so it starts once the kubelet has registered it.
start_firewall() {
  # The hand-written enforcer kube-router replaced: stop it and drop its rules (which outlive it,
  # and would keep gating pod addresses nobody updates any more).
  stop_daemon netpol
  remove_chains 'KCNP|KUBECIRCUS-NETPOL'
  kubectl_ apply -f "$(dirname "$0")/manifests/kube-router-rbac.yaml" >/dev/null
  wait_for 60 "node $NODE_NAME registered" kubectl_ get node "$NODE_NAME"
  # Its INPUT chain lets pods reach node ports (TCP/UDP to the node's addresses) whatever the
  # policy: narrowed to the node port the cluster serves (the bundled store's, which kube-proxy
  # turns into pod traffic before that chain, so policies still apply to it).
  local args=(--kubeconfig "$STATE/kube-router.conf"
    --run-firewall=true --run-router=false --run-service-proxy=false
    --hostname-override "$NODE_NAME" --service-cluster-ip-range "$SERVICE_CIDR"
    --health-port 0 --metrics-port 0 --service-node-port-range 30900-30901)
  rm -f "$RUN/kube-router.args"  # what recorded its flags before start_daemon did
  start_daemon kube-router "$BIN/kube-router" "${args[@]}"  # a restart keeps its rules meanwhile
  wait_for 60 "kube-router's firewall chains" iptables -w -S KUBE-ROUTER-FORWARD
  sleep 2  # chains left by an earlier run prove nothing: it must still be running
  require_running kube-router
  # kube-router adds its node-port rules but never removes those of an earlier range
  iptables -w -S KUBE-ROUTER-INPUT | grep -- 'node ports' | grep -v -- '--dports 30900:30901' |
    sed 's/^-A/-D/' | while read -r rule; do eval iptables -w "$rule"; done || true  # none: grep fails
}

addons() {
  local manifest
  # A StorageClass's provisioner and binding mode cannot change: a cluster made before they did
  # (local-path, whose pod made and removed each directory with a helper pod) has its class
  # replaced. Its old volumes stay until make cluster-down.
  local class
  class=$(kubectl_ get storageclass standard -o 'jsonpath={.provisioner} {.volumeBindingMode}' 2>/dev/null || true)
  if [[ -n $class && $class != "kubecircus.io/host-path Immediate" ]]; then
    kubectl_ delete storageclass standard >/dev/null
    kubectl_ delete namespace local-path-storage --ignore-not-found --wait=false >/dev/null
  fi
  for manifest in "$(dirname "$0")"/manifests/*.yaml; do
    kubectl_ apply -f "$manifest" >/dev/null
  done
  # 1,024 descriptors are plenty for it, and few enough that tests/cluster/test_volumes.py can
  # prove a deep tree is removed without one per level.
  local provisioner=(prlimit --nofile=1024:1024 -- "$BIN/hostpath-provisioner"
    --kubeconfig "$STATE/hostpath-provisioner.conf" --root "$STATE/volumes" --node "$NODE_NAME")
  start_daemon hostpath-provisioner "${provisioner[@]}"
  wait_for 120 "node $NODE_NAME Ready" kubectl_ wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
  kubectl_ -n kube-system rollout status deployment/coredns --timeout=180s >/dev/null
  if ! running hostpath-provisioner; then
    # Seen once in CI, with an empty log: stopped from outside seconds after its start (it exits
    # quietly on SIGTERM). Idempotence says start it again, once, and say so.
    log "hostpath-provisioner exited right after its start: $(tail -n 5 "$RUN/hostpath-provisioner.log"); starting it again"
    start_daemon hostpath-provisioner "${provisioner[@]}"
    sleep 2
  fi
  require_running hostpath-provisioner
}

main() {
  if use_kind; then kind_up; return; fi
  preflight
  local start=$SECONDS
  "$(dirname "$0")/build-tools.sh"
  mkdir -p "$OUT/bin" "$RUN"
  ln -sf "$KUBE" "$OUT/bin/kubectl"
  ln -sf "$BIN/helm" "$OUT/bin/helm"
  make_pki
  cp "$STATE/admin.conf" "$KUBECONFIG_ADMIN"
  host_network
  write_configs
  start_control_plane
  start_node
  "$(dirname "$0")/images.sh"
  addons
  log "ready in $((SECONDS - start))s: export KUBECONFIG=$KUBECONFIG_ADMIN PATH=$OUT/bin:\$PATH"
}

main "$@"
