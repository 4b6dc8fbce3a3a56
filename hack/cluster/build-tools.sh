#!/usr/bin/env bash
# Builds the cluster's Go components into $KUBECIRCUS_CACHE/bin, each only when its pinned
# module versions (go.mod/go.sum and main.go) changed since the last build. Usage: build-tools.sh [NAME...]
set -euo pipefail
shopt -s nullglob
here=$(cd "$(dirname "$0")" && pwd)
cache=${KUBECIRCUS_CACHE:-$HOME/.cache/kubecircus}
bin=$cache/bin
mkdir -p "$bin"
# Go: the PATH's, else the usual tarball location (non-interactive shells may not have it on PATH).
[[ -d /usr/local/go/bin ]] && PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "build-tools: Go >= 1.24 is needed (https://go.dev/dl or the golang package)" >&2; exit 1; }
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [[ $go_minor -lt 24 ]]; then
  export GOTOOLCHAIN=go1.24.0  # fetched through the Go module proxy like any module
fi
module_version() {  # module_version MODULE GO.MOD: the version GO.MOD requires
  awk -v m="$1" '($1 == m || ($1 == "require" && $2 == m)) {for (i = 1; i <= NF; i++) if ($i ~ /^v[0-9]/) {print $i; exit}}' "$2"
}
kube_version=$(module_version k8s.io/kubernetes "$here/kube/go.mod")
[[ -n $kube_version ]] || { echo "build-tools: no k8s.io/kubernetes version in kube/go.mod" >&2; exit 1; }

build() {  # build NAME DIR PACKAGE [LDFLAGS]
  local name=$1 dir=$2 pkg=$3 ldflags=${4:-}
  local stamp
  stamp=$(find "$dir" -name go.mod -o -name go.sum -o -name '*.go' | sort | xargs cat | sha256sum | cut -c1-16)
  if [[ -x $bin/$name && -f $bin/.$name.stamp && $(cat "$bin/.$name.stamp") == "$stamp" ]]; then
    echo "build-tools: $name is up to date"
    return
  fi
  echo "build-tools: building $name ($pkg)"
  local start=$SECONDS
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  echo "$stamp" > "$bin/.$name.stamp"
  echo "build-tools: built $name in $((SECONDS - start))s"
}

kube_ldflags="-X k8s.io/component-base/version.gitVersion=$kube_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$(echo "$kube_version" | cut -d. -f2) \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(kube etcd coredns hostpath-provisioner minio helm kube-router kindcheck)
for name in "${names[@]}"; do
  case $name in
    kube) build kube "$here/kube" . "$kube_ldflags" ;;
    etcd) build etcd "$here/tools/etcd" . ;;
    coredns) build coredns "$here/tools/coredns" . ;;
    hostpath-provisioner) build hostpath-provisioner "$here/tools/hostpath-provisioner" . ;;
    minio) build minio "$here/tools/minio" github.com/minio/minio ;;
    helm) build helm "$here/tools/helm" helm.sh/helm/v3/cmd/helm ;;
    kindcheck) build kindcheck "$here/tools/kindcheck" . ;;
    kube-router) build kube-router "$here/tools/kube-router" github.com/cloudnativelabs/kube-router/cmd/kube-router \
      "-X github.com/cloudnativelabs/kube-router/pkg/version.Version=$(module_version github.com/cloudnativelabs/kube-router "$here/tools/kube-router/go.mod")" ;;
    *) echo "build-tools: unknown component $name" >&2; exit 2 ;;
  esac
done
