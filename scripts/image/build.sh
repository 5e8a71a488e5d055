#!/usr/bin/env bash
# Builds weir's OCI image offline, with neither a registry nor a container daemon: the release
# binary, the shared libraries it links (glibc's, as Debian ships them) and CA certificates on
# an empty base, one layer, as umoci writes it. The same content as the Dockerfile's image.
#
#   bash scripts/image/build.sh BINARY OUT_DIR [TAG]
#
# Writes OUT_DIR/layout (an OCI image layout, tag TAG) and OUT_DIR/weir-TAG.oci.tar (the same as
# an archive: `skopeo copy oci-archive:OUT_DIR/weir-TAG.oci.tar docker://REGISTRY/weir:TAG`),
# and prints the image's size.
set -euo pipefail
bin=$(realpath "$1")
out=$2
tag=${3:-$("$bin" --version | awk '{print $2}')}
if ! command -v umoci >/dev/null 2>&1; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq umoci >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/var/lib/weir" "$root/tmp" "$root/home/nonroot"
# Symbols are for debuggers; the image carries the code.
objcopy --strip-debug --strip-unneeded "$bin" "$root/usr/local/bin/weir"
chmod 0755 "$root/usr/local/bin/weir"
# Exactly the libraries the binary loads, at the paths it loads them from.
for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
chmod 1777 "$root/tmp"
chown 65532:65532 "$root/var/lib/weir" "$root/home/nonroot"

mkdir -p "$out"
rm -rf "$out/layout"
umoci init --layout "$out/layout"
umoci new --image "$out/layout:$tag"
umoci insert --image "$out/layout:$tag" "$root" /
umoci config --image "$out/layout:$tag" --author weir \
  --config.user 65532:65532 --config.workingdir / \
  --config.entrypoint /usr/local/bin/weir \
  --config.cmd server --config.cmd --listen --config.cmd 0.0.0.0:8888 \
  --config.exposedports 8888/tcp \
  --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.label "org.opencontainers.image.title=weir" \
  --config.label "org.opencontainers.image.version=$tag"
umoci gc --layout "$out/layout"
tar -C "$out/layout" -cf "$out/weir-$tag.oci.tar" .
compressed=$(find "$out/layout/blobs" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
unpacked=$(du -sb "$root" | cut -f1)
awk -v tag="$tag" -v c="$compressed" -v u="$unpacked" -v out="$out/weir-$tag.oci.tar" 'BEGIN {
  printf "image weir:%s: %d bytes compressed (%.1f MiB), %d bytes unpacked (%.1f MiB) -> %s\n", tag, c, c / 1048576, u, u / 1048576, out
}'
