#!/usr/bin/env bash
# Builds the Asterisk root filesystem once per machine (Debian sid via debootstrap)
# and leaves it in a cache directory outside the repository. Idempotent: a finished
# build is marked and reused.
set -euo pipefail

root="${1:-${CONTROLPLANE_ASTERISK_ROOTFS:-${XDG_CACHE_HOME:-$HOME/.cache}/controlplane/asterisk-rootfs}}"
# Asterisk with voicemail and music on hold, sox (prompt and greeting conversion), and
# Kamailio with its PostgreSQL driver (the SIP edge of a multi-node deployment).
packages="asterisk,asterisk-modules,asterisk-config,asterisk-core-sounds-en-gsm"
packages="$packages,asterisk-moh-opsound-gsm,sox,kamailio,kamailio-postgres-modules"

# The marker holds the package list it was built with: a changed list rebuilds.
if [ -f "$root/.controlplane-rootfs-ready" ] && [ "$(cat "$root/.controlplane-rootfs-ready")" = "$packages" ]; then
  echo "asterisk rootfs: reusing $root"
  exit 0
fi

need() { command -v "$1" >/dev/null 2>&1; }
if ! need debootstrap; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# The mirror is whatever this machine's apt already uses, so the project names none.
mirror="${CONTROLPLANE_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '{print $2}' | grep -v security | head -n1 || true)
fi
if [ -z "$mirror" ]; then
  mirror=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1 || true)
fi
[ -n "$mirror" ] || { echo "asterisk rootfs: no Debian mirror found in apt sources; set CONTROLPLANE_DEBIAN_MIRROR" >&2; exit 1; }

rm -rf "$root"
mkdir -p "$(dirname "$root")"
echo "asterisk rootfs: debootstrap sid into $root (about a minute)"
debootstrap --variant=minbase --include="$packages" sid "$root" "$mirror" >"$root.log" 2>&1 \
  || { tail -n 30 "$root.log" >&2; exit 1; }
# Without its own hostname in /etc/hosts, Asterisk blocks on DNS look-ups at boot.
printf '127.0.0.1 localhost %s\n::1 localhost\n' "$(hostname)" >"$root/etc/hosts"
rm -rf "$root/var/cache/apt/archives/"*.deb
printf '%s' "$packages" >"$root/.controlplane-rootfs-ready"
echo "asterisk rootfs: ready at $root"
