#!/usr/bin/env bash
# Build the component images with buildah where no container registry is reachable:
# a Debian base from debootstrap (mirror taken from this machine's apt sources), then
# the project's Dockerfile on it. Usage: base_image.sh WORKDIR TARGET TAG
set -euo pipefail
W=$(realpath -m "${1:?workdir}"); TARGET=${2:-data}; TAG=${3:-localhost/kfp-mlops-data:test}
mkdir -p "$W"
cat > "$W/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF=$W/containers.conf
ST=(--root "$W/storage" --runroot "$W/run" --storage-driver overlay)

mirror() {
  local m=""
  [ -f /etc/apt/sources.list.d/debian.sources ] && m=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources | head -1)
  [ -n "$m" ] || m=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  echo "$m"
}

if ! buildah "${ST[@]}" inspect localhost/base:bookworm-py >/dev/null 2>&1; then
  if [ ! -x "$W/rootfs/usr/bin/python3" ]; then
    rm -rf "$W/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$W/rootfs" "$(mirror)" >/dev/null
    rm -rf "$W"/rootfs/var/cache/apt/archives/*.deb "$W"/rootfs/var/lib/apt/lists/*
  fi
  c=$(buildah "${ST[@]}" from scratch)
  m=$(buildah "${ST[@]}" mount "$c")
  cp -a "$W/rootfs/." "$m/"
  buildah "${ST[@]}" umount "$c" >/dev/null
  buildah "${ST[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$c"
  buildah "${ST[@]}" commit -q "$c" localhost/base:bookworm-py >/dev/null
  buildah "${ST[@]}" rm "$c" >/dev/null
fi

# The host CA bundle is mounted for the build's pip step only (TLS goes through a proxy here).
# torch: the CPU wheel in the folder the host's pip finds wheels in, mounted into the build.
EXTRA=()
WHEELS=$(python3 -m pip config get global.find-links 2>/dev/null || true)
if [ -n "$WHEELS" ] && [ -d "$WHEELS" ]; then
  EXTRA=(-v "$WHEELS:/wheels:ro" --build-arg PIP_FIND_LINKS=/wheels)
fi
buildah "${ST[@]}" build -q --isolation chroot --layers \
  -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro "${EXTRA[@]}" \
  --build-arg BASE_IMAGE=localhost/base:bookworm-py --target "$TARGET" -t "$TAG" .
