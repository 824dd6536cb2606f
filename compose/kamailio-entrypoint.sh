#!/bin/sh
# The `kamailio` service's entrypoint (compose profile "edge"): waits for the
# configuration the `edge-config` service renders into the shared volume, checks it
# (`kamailio -c`), then runs Kamailio in the foreground (logs to `podman logs`).
# The image renders nothing itself, like the Asterisk one.
set -eu

dir="${EDGE_DIR:-/srv/controlplane/kamailio}"
cfg="$dir/etc/kamailio.cfg"
wait_seconds="${KAMAILIO_CONFIG_WAIT:-300}"

waited=0
until [ -f "$cfg" ]; do
  if [ "$waited" -ge "$wait_seconds" ]; then
    echo "controlplane-kamailio: no $cfg after ${wait_seconds} s; is the edge-config service running?" >&2
    exit 1
  fi
  [ $((waited % 10)) -eq 0 ] && echo "controlplane-kamailio: waiting for $cfg" >&2
  sleep 1
  waited=$((waited + 1))
done

mkdir -p "$dir/run"
rm -f "$dir/run/kamailio.pid"
/usr/sbin/kamailio -c -f "$cfg"
exec /usr/sbin/kamailio -f "$cfg" -DD -E -P "$dir/run/kamailio.pid" -Y "$dir/run" "$@"
