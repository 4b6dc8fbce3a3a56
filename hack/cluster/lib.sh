# Shared settings of the local cluster scripts (sourced, not run).
# shellcheck shell=bash
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${KUBECIRCUS_CACHE:-$HOME/.cache/kubecircus}
STATE=${KUBECIRCUS_CLUSTER_STATE:-/var/lib/kubecircus-cluster}
RUN=$STATE/run
PKI=$STATE/pki
OUT=$REPO/.cluster
BIN=$CACHE/bin
KUBE=$BIN/kube
NODE_NAME=kubecircus-control-plane
# The node's address lives on the loopback device: it is on this machine whatever the host's
# network looks like, and nothing routed to it can leave the machine.
NODE_IP=${KUBECIRCUS_NODE_IP:-10.87.0.1}
POD_CIDR=10.244.0.0/16
NODE_POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
CONTAINERD_SOCK=$RUN/containerd.sock
KUBECONFIG_ADMIN=$OUT/kubeconfig

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }

kubectl_() { "$KUBE" kubectl --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# Run a component in the background, detached from this shell, with its pid and log in $RUN.
# Components get a clean environment with the system's PATH, never the caller's: a developer's
# PATH may put script shims first (pyenv's `python3` is a bash script of some thirty forks, 0.1 s
# of CPU), and containerd runs the CNI chain, the quarantine plug-in a Python script, twice for
# every pod; PYTHONHOME or a proxy setting would reach them too.
SYSTEM_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# A component already running is kept if it was started with the same command line from the
# same build of its executables (daemon_spec, recorded beside its pid); one whose flags changed
# or whose binary was rebuilt since is restarted. One rule for every component, so that a
# developer's `make cluster-up` after a pull never leaves an old process serving.
start_daemon() {
  local name=$1 spec; shift
  spec=$(daemon_spec "$@")
  if running "$name"; then
    [[ $(cat "$RUN/$name.spec" 2>/dev/null) == "$spec" ]] && return 0
    log "restarting $name: its command line or executable changed since it started"
    stop_daemon "$name"
  fi
  setsid env -i PATH="$SYSTEM_PATH" HOME="$HOME" LANG=C.UTF-8 "$@" >"$RUN/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
  printf '%s\n' "$spec" > "$RUN/$name.spec"
  log "started $name (pid $!, log $RUN/$name.log)"
}

# The command line, and the modification time of each executable file named in it by path.
daemon_spec() {
  local arg
  printf '%s\n' "$*"
  for arg in "$@"; do
    if [[ $arg == /* && -f $arg && -x $arg ]]; then stat -c '%n %Y' "$arg"; fi
  done
}

# Fail with the component's exit status and the end of its log unless it is still running.
# The status is known when this shell started it (127 otherwise: not its child).
require_running() {
  local name=$1 pid status=0
  running "$name" && return 0
  pid=$(cat "$RUN/$name.pid" 2>/dev/null || true)
  wait "$pid" 2>/dev/null || status=$?
  die "$name exited (status $status; 143 is SIGTERM, 137 SIGKILL): $(tail -n 5 "$RUN/$name.log")"
}

# Alive, and still the component: a pid file that outlived a reboot may name a pid reused since
# by another process, which must be neither taken for the component nor killed as it.
running() {
  local pid
  [[ -f $RUN/$1.pid ]] && pid=$(cat "$RUN/$1.pid") && kill -0 "$pid" 2>/dev/null &&
    grep -qaF -- "$1" "/proc/$pid/cmdline"
}

stop_daemon() {  # SIGTERM, ten seconds' grace, then SIGKILL
  local name=$1 pid
  [[ -f $RUN/$name.pid ]] || return 0
  pid=$(cat "$RUN/$name.pid")
  if running "$name"; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true  # gone already: the usual case
  fi
  rm -f "$RUN/$name.pid" "$RUN/$name.spec"
}

# Remove every iptables chain (in filter, nat, mangle) whose name matches the extended regex
# PATTERN, with the rules that jump to it.
remove_chains() {
  local pattern=$1 table chain rule
  for table in filter nat mangle; do
    for chain in $(iptables-save -t "$table" 2>/dev/null | grep -oE "^:($pattern)[^ ]*" | tr -d :); do
      iptables -w -t "$table" -S 2>/dev/null | grep -E -- "-j $chain( |$)" | grep -v "^-N" |
        sed 's/^-A/-D/' | while read -r rule; do eval iptables -w -t "$table" "$rule" 2>/dev/null; done
    done
    for chain in $(iptables-save -t "$table" 2>/dev/null | grep -oE "^:($pattern)[^ ]*" | tr -d :); do
      iptables -w -t "$table" -F "$chain" 2>/dev/null
    done
    for chain in $(iptables-save -t "$table" 2>/dev/null | grep -oE "^:($pattern)[^ ]*" | tr -d :); do
      iptables -w -t "$table" -X "$chain" 2>/dev/null
    done
  done
  return 0
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      die "timed out after ${limit}s waiting for $what (logs in $RUN)"
    fi
    sleep 1
  done
}
