#!/usr/bin/env bash
# Builds a busybox base image from Debian's busybox-static as an OCI image layout, with umoci.
# Usage: scripts/demo/busybox-image.sh LAYOUT_DIR TAG   (as root; LAYOUT_DIR must not exist)
#
# The root filesystem holds /bin/busybox and one symlink to it per applet (the paths
# `busybox --list-full` prints), a minimal /etc/passwd and /etc/group (root, app with uid 1000,
# nobody), /tmp, /root and /home/app. Every timestamp is the busybox binary's, so the image is
# the same bytes on every run with the same busybox package, and kiln's cache keeps hitting.
set -euo pipefail

layout=${1:?usage: busybox-image.sh LAYOUT_DIR TAG}
tag=${2:?usage: busybox-image.sh LAYOUT_DIR TAG}
busybox=/bin/busybox
for tool in umoci "$busybox"; do
  command -v "$tool" >/dev/null || { echo "kiln demo: $tool is missing (run scripts/prereqs.sh)" >&2; exit 1; }
done

created=$(date -u -r "$busybox" +%Y-%m-%dT%H:%M:%SZ)
bundle=$(mktemp -d "${TMPDIR:-/tmp}/kiln-demo-bundle.XXXXXX")
trap 'rm -rf "$bundle"' EXIT

umoci init --layout "$layout"
umoci new --image "$layout:$tag"
# `umoci unpack` needs a directory that does not exist yet.
umoci unpack --image "$layout:$tag" "$bundle/b" >/dev/null
rootfs=$bundle/b/rootfs

install -d -m 0755 "$rootfs/bin" "$rootfs/sbin" "$rootfs/usr/bin" "$rootfs/usr/sbin" "$rootfs/etc"
install -d -m 1777 "$rootfs/tmp"
install -d -m 0700 "$rootfs/root"
install -d -m 0755 -o 1000 -g 1000 "$rootfs/home/app"
install -m 0755 "$busybox" "$rootfs/bin/busybox"
"$busybox" --list-full | while read -r applet; do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$rootfs/$(dirname "$applet")"
  ln -sf /bin/busybox "$rootfs/$applet"
done
cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
app:x:1000:
nogroup:x:65534:
GROUP
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"
find "$rootfs" -exec touch -h -d "$created" {} +

umoci repack --image "$layout:$tag" --history.created "$created" \
  --history.created_by "busybox-static $("$busybox" | sed -n '1s/^BusyBox \(v[^ ]*\).*/\1/p') from Debian" \
  "$bundle/b"
umoci config --image "$layout:$tag" --created "$created" --history.created "$created" \
  --config.env 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --config.cmd sh
