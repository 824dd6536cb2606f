#!/bin/sh
# Container entrypoint: waits for the configuration the control plane writes into
# the shared instance directory (/srv/controlplane/<instance>/etc/asterisk.conf),
# then runs Asterisk on it in the foreground (logs to `podman logs`).
#
# The image renders nothing itself: one function in the daemon produces the
# whole configuration (base, realtime, cdr_pgsql, trunks, dialplan) for every way
# Asterisk is started.
#
# A configuration kept from an earlier run (a kept volume) is used at once: the
# daemon rewrites what changed at its start and reloads it over AMI
# (docs/deployment.md), asterisk.conf being written last on a first start.
set -eu

instance="${CONTROLPLANE_ASTERISK__INSTANCE:-default}"
case "$instance" in
  "" | *[!A-Za-z0-9_]*) echo "CONTROLPLANE_ASTERISK__INSTANCE: letters, digits and _ only" >&2; exit 64 ;;
esac
dir="/srv/controlplane/$instance"
conf="$dir/etc/asterisk.conf"
wait_seconds="${ASTERISK_CONFIG_WAIT:-300}"

waited=0
until [ -f "$conf" ]; do
  if [ "$waited" -ge "$wait_seconds" ]; then
    echo "controlplane-asterisk: no $conf after ${wait_seconds} s; is the control plane running" \
         "(asterisk.run: external, asterisk.config_dir on this volume)?" >&2
    exit 1
  fi
  [ $((waited % 10)) -eq 0 ] && echo "controlplane-asterisk: waiting for the control plane to write $conf" >&2
  sleep 1
  waited=$((waited + 1))
done

mkdir -p "$dir/run" "$dir/log" "$dir/spool/cache" "$dir/db"
# A container killed earlier leaves its control socket and pid file behind.
rm -f "$dir/run/asterisk.ctl" "$dir/run/asterisk.pid"
# Plain `asterisk -rx ...` (healthcheck, exec) finds this instance.
ln -sf "$conf" /etc/asterisk/asterisk.conf

exec /usr/sbin/asterisk -C "$conf" -f -n "$@"
