#!/usr/bin/env bash
# make images: builds the project's images from images/*/Dockerfile without a registry and loads
# them into the cluster (containerd's k8s.io namespace here, `kind load` on kind).
#   images.sh --base-only   pause and the busybox base (needed before the kubelet starts)
#   images.sh --system      + CoreDNS (the cluster add-on)
#   images.sh               + every project image: toolbox, MinIO, operator, worker, and the
#                             plug-ins in plugins/ (lesion-candidates, hostile)
#   images.sh --publish     tags the operator, worker and lesion-candidates images (built before)
#                           as $REGISTRY/NAME:VERSION (the chart's appVersion), and pushes
#                           them when PUSH=1 (buildah push: log in first with `buildah login`)
# An image is rebuilt only when its Dockerfile or inputs changed (a stamp beside its archive).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ARCHIVES=$CACHE/images
BUSYBOX_BASE=localhost/kubecircus/busybox-base:dev
PYTHON_BASE=localhost/kubecircus/python-base:dev
mkdir -p "$ARCHIVES"

on_kind() { [[ -f $KUBECONFIG_ADMIN ]] && grep -q "kind-kubecircus" "$KUBECONFIG_ADMIN"; }

load() {  # load ARCHIVE
  if on_kind; then
    kind load image-archive "$1" --name kubecircus
  else
    ctr --address "$CONTAINERD_SOCK" -n k8s.io images import --no-unpack=false "$1" >/dev/null
  fi
}

busybox_base() {
  buildah inspect --type image "$BUSYBOX_BASE" >/dev/null 2>&1 && return 0
  local root
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root"
  cp /bin/busybox "$root/bin/busybox"
  "$root/bin/busybox" --install -s "$root/bin"
  # --install links to the host path of busybox; inside the image it is /bin/busybox
  for link in "$root"/bin/*; do [[ -L $link ]] && ln -sf /bin/busybox "$link"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"
  chmod 1777 "$root/tmp"
  local ctr
  ctr=$(buildah from scratch)
  buildah copy -q "$ctr" "$root" / >/dev/null
  buildah config --env PATH=/bin --cmd sh "$ctr"
  buildah commit -q "$ctr" "$BUSYBOX_BASE" >/dev/null
  buildah rm "$ctr" >/dev/null
  rm -rf "$root"
  log "made $BUSYBOX_BASE from Debian's busybox-static"
}

python_base() {
  buildah inspect --type image "$PYTHON_BASE" >/dev/null 2>&1 && return 0
  local root
  root=$(mktemp -d)
  log "debootstrap: Debian bookworm minbase with python3 (a minute or two)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" \
    http://deb.debian.org/debian >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc \
    "$root"/usr/share/man "$root"/usr/share/locale
  local ctr
  ctr=$(buildah from scratch)
  buildah copy -q "$ctr" "$root" / >/dev/null
  buildah config --env PATH=/usr/local/bin:/usr/bin:/bin --cmd python3 "$ctr"
  buildah commit -q "$ctr" "$PYTHON_BASE" >/dev/null
  buildah rm "$ctr" >/dev/null
  rm -rf "$root"
  log "made $PYTHON_BASE with debootstrap"
}

PYTHON=$REPO/.venv/bin/python
[[ -x $PYTHON ]] || PYTHON=python3

wheels() {  # the project and its dependencies as wheels, for an offline install in the images
  local out=$CACHE/wheels/wheels
  mkdir -p "$out"
  rm -f "$out"/kubecircus-*.whl
  # Dependencies already there are reused; the project's wheel is reproducible (fixed date).
  SOURCE_DATE_EPOCH=315532800 "$PYTHON" -m pip wheel -q --wheel-dir "$out" --find-links "$out" \
    "$REPO[worker,operator]" >/dev/null
  echo "$out"
}

plugin_wheels() {  # plugin_wheels NAME: binary wheels of a plug-in's requirements.txt
  local out=$CACHE/plugin-wheels/$1/wheels
  mkdir -p "$out"
  "$PYTHON" -m pip download -q --only-binary=:all: --dest "$out" --find-links "$out" \
    -r "$REPO/plugins/$1/requirements.txt" >/dev/null
  echo "$out"
}

build() {  # build NAME [FILE...]  - images/NAME (or plugins/NAME); files are copied into the context
  local name=$1; shift
  local dir=$REPO/images/$name tag=localhost/kubecircus/$name:dev archive=$ARCHIVES/$name.tar
  [[ -d $dir ]] || dir=$REPO/plugins/$name
  local stamp
  stamp=$( ( (cd "$dir" && find . -type f ! -path './wheels/*' -print0 | sort -z | xargs -0 sha256sum)
    echo "base: ${BASE_IMAGE:-$BUSYBOX_BASE}"
    for f in "$@"; do
      if [[ -d $f ]]; then (cd "$f" && sha256sum ./*); else sha256sum < "$f"; fi
    done) | sha256sum | cut -c1-16)
  if [[ ! -f $archive || $(cat "$archive.stamp" 2>/dev/null) != "$stamp" ]]; then
    local ctx
    ctx=$(mktemp -d)
    cp -r "$dir/." "$ctx/"
    [[ $# -gt 0 ]] && cp -r "$@" "$ctx/"
    buildah bud -q --layers=false --build-arg "BASE_IMAGE=${BASE_IMAGE:-$BUSYBOX_BASE}" -t "$tag" \
      -f "$ctx/Dockerfile" "$ctx" >/dev/null
    rm -f "$archive"
    buildah push -q "$tag" "docker-archive:$archive:$tag" >/dev/null
    echo "$stamp" > "$archive.stamp"
    rm -rf "$ctx"
    log "built $tag"
  fi
  load "$archive"
}

publish() {
  [[ -n ${REGISTRY:-} ]] || die "REGISTRY is not set (e.g. make images REGISTRY=ghcr.io/you PUSH=1)"
  local version name
  version=$(awk '$1 == "appVersion:" {gsub(/"/, "", $2); print $2}' "$REPO/helm/kubecircus/Chart.yaml")
  for name in operator worker lesion-candidates; do
    buildah tag "localhost/kubecircus/$name:dev" "$REGISTRY/$name:$version"
    if [[ ${PUSH:-0} == 1 ]]; then
      buildah push "$REGISTRY/$name:$version"
      log "pushed $REGISTRY/$name:$version"
    else
      log "tagged $REGISTRY/$name:$version (PUSH=1 pushes it)"
    fi
  done
}

mode=${1:-all}
if [[ $mode == --publish ]]; then publish; exit 0; fi
busybox_base
build pause /usr/bin/catatonit
[[ $mode == --base-only ]] && exit 0
build coredns "$BIN/coredns"
[[ $mode == --system ]] && exit 0
build toolbox
build minio "$BIN/minio"
python_base
project_wheels=$(wheels)
BASE_IMAGE=$PYTHON_BASE build operator "$project_wheels"
BASE_IMAGE=$PYTHON_BASE build worker "$project_wheels"
BASE_IMAGE=$PYTHON_BASE build hostile
BASE_IMAGE=$PYTHON_BASE build lesion-candidates "$(plugin_wheels lesion-candidates)"
log "images loaded"
[[ -z ${REGISTRY:-} ]] || publish
