#!/usr/bin/env bash
# Builds the Kubernetes control plane the deploy tests run against (kube-apiserver,
# kube-controller-manager, kube-scheduler) from Debian's own source package, offline, and
# caches the binaries outside the clone, keyed by the package version. Prints the bin folder.
#
#   bash scripts/k8s/build.sh            # -> ~/.cache/weir-ci/k8s-<version>/bin
#
# Needs root (apt-get installs etcd-server, golang-go, make, rsync). The source package ships
# the whole Kubernetes tree with vendor/, so nothing is fetched but Debian's sources. A cold
# build takes ~5–7 minutes on 2 cores and ~2 GB of disk (removed afterwards).
set -euo pipefail
cache=${WEIR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weir-ci}
need_pkgs=()
for p in etcd-server golang-go make rsync; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "== installing ${need_pkgs[*]}" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
# The cache is keyed by the source package's version, which the binary package built from it
# (kubernetes-client) tells without fetching source lists.
# awk reads to the end: stopping at the first match would end apt-cache with SIGPIPE, which
# pipefail turns into this script's failure.
version=$(apt-cache show kubernetes-client 2>/dev/null | awk '/^Version:/ && !v {v = $2} END {print v}')
if [ -n "$version" ]; then
  bin=$cache/k8s-${version//[^A-Za-z0-9.+-]/_}/bin
  if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/kube-scheduler" ]; then
    echo "$bin"
    exit 0
  fi
fi
# A deb-src list for the machine's own mirror and suite, private to this script.
work=$(mktemp -d "${TMPDIR:-/tmp}/weir-k8s-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/parts" "$work/apt/lists/partial" "$work/src"
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$work/apt/parts/src.sources"
else
  grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > "$work/apt/parts/src.list"
fi
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/apt/parts" -o "Dir::State::Lists=$work/apt/lists")
apt-get "${apt_opts[@]}" update -qq >/dev/null
version=$(apt-cache "${apt_opts[@]}" showsrc kubernetes | awk '/^Version:/ && !v {v = $2} END {print v}')
bin=$cache/k8s-${version//[^A-Za-z0-9.+-]/_}/bin
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/kube-scheduler" ]; then
  echo "$bin"
  exit 0
fi
echo "== building Kubernetes $version from Debian's source package into $bin" >&2
started=$SECONDS
(cd "$work/src" && apt-get "${apt_opts[@]}" source --download-only -qq kubernetes >/dev/null && tar xzf kubernetes_*.orig.tar.gz)
tree=$(find "$work/src" -maxdepth 1 -type d -name 'kubernetes-*' -print -quit)
upstream=$(basename "$tree" | sed 's/^kubernetes-//')
(cd "$tree" && env -u GOPATH GOCACHE="$work/gocache" GOPROXY=off GOFLAGS= CGO_ENABLED=0 \
  KUBE_GIT_VERSION="v$upstream" KUBE_GIT_TREE_STATE=clean \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >&2)
# Into a temporary folder first, so an interrupted build never looks finished.
mkdir -p "$(dirname "$bin")"
tmp=$(mktemp -d "$bin.XXXXXX")
cp "$tree"/_output/bin/kube-apiserver "$tree"/_output/bin/kube-controller-manager "$tree"/_output/bin/kube-scheduler "$tmp/"
mv -T "$tmp" "$bin" 2>/dev/null || rm -rf "$tmp"
echo "== built in $((SECONDS - started)) s" >&2
echo "$bin"
