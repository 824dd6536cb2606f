#!/usr/bin/env bash
# Base images for the compose path on a host that reaches no container registry:
# each is a debootstrap root filesystem imported FROM scratch into podman.
#
#   localhost/controlplane-base-asterisk:<tag>  the Asterisk root filesystem of
#       asterisk/build-rootfs.sh (only read here: tarred, never changed)
#   localhost/controlplane-base-python:<tag>    Debian 12 minbase + python3 (3.11)
#       + python3-venv, debootstrapped once into its own cache directory
#
# The tag is derived from each root filesystem's ready marker, so an image is
# imported once per root filesystem build. Prints the two image names as
#   ASTERISK_BASE_IMAGE=...
#   CONTROLPLANE_BASE_IMAGE=...
# for compose/docker-compose.yml's build arguments. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${XDG_CACHE_HOME:-$HOME/.cache}/controlplane"
asterisk_root="${CONTROLPLANE_ASTERISK_ROOTFS:-$cache/asterisk-rootfs}"
python_root="${CONTROLPLANE_PYTHON_ROOTFS:-$cache/python-rootfs}"
python_packages="python3,python3-venv,ca-certificates"

say() { echo "base images: $*" >&2; }

[ -f "$asterisk_root/.controlplane-rootfs-ready" ] \
  || { echo "base images: no Asterisk root filesystem at $asterisk_root; run: bash asterisk/build-rootfs.sh" >&2; exit 1; }

debian_mirror() {
  local mirror="${CONTROLPLANE_DEBIAN_MIRROR:-}"
  [ -n "$mirror" ] || mirror=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$mirror" ] || mirror=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1 || true)
  [ -n "$mirror" ] || { echo "base images: no Debian mirror in apt sources; set CONTROLPLANE_DEBIAN_MIRROR" >&2; exit 1; }
  echo "$mirror"
}

if [ ! -f "$python_root/.controlplane-rootfs-ready" ]; then
  mirror=$(debian_mirror)
  rm -rf "$python_root"
  mkdir -p "$(dirname "$python_root")"
  say "debootstrap bookworm + python3 into $python_root (about a minute)"
  debootstrap --variant=minbase --include="$python_packages" bookworm "$python_root" "$mirror" \
    >"$python_root.log" 2>&1 || { tail -n 30 "$python_root.log" >&2; exit 1; }
  rm -rf "$python_root/var/cache/apt/archives/"*.deb "$python_root/var/lib/apt/lists/"*
  # pip in the image build must trust what this host trusts (a TLS-inspecting
  # egress proxy's CA, say): the host's bundle replaces Debian's stock one.
  if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$python_root/etc/ssl/certs/ca-certificates.crt"
  fi
  date -u +%Y%m%dT%H%M%SZ >"$python_root/.controlplane-rootfs-ready"
fi

# One tag per root filesystem build: the ready marker's modification time.
tag_of() { date -u -r "$1/.controlplane-rootfs-ready" +%Y%m%d%H%M%S; }

import_rootfs() {  # root image
  local root="$1" image="$2"
  if podman image exists "$image"; then
    say "reusing $image"
    return
  fi
  say "importing $root as $image"
  # Read-only walk of the root filesystem; instance directories and pseudo
  # filesystems stay out of the image.
  tar -C "$root" --numeric-owner --one-file-system \
      --exclude=./srv/controlplane/* --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* \
      --exclude=./tmp/* --exclude=./var/tmp/* --exclude=./.controlplane-rootfs-ready \
      -cf - . | podman import --quiet - "$image" >/dev/null
}

asterisk_image="localhost/controlplane-base-asterisk:$(tag_of "$asterisk_root")"
python_image="localhost/controlplane-base-python:$(tag_of "$python_root")"
import_rootfs "$asterisk_root" "$asterisk_image"
import_rootfs "$python_root" "$python_image"
echo "ASTERISK_BASE_IMAGE=$asterisk_image"
echo "CONTROLPLANE_BASE_IMAGE=$python_image"
