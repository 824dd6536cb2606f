#!/bin/sh
# The `edge-config` service (compose profile "edge"): renders Kamailio's configuration
# with `controlplane edge render` into the shared volume (/srv/controlplane/kamailio/etc),
# where the `kamailio` service's entrypoint waits for it, then exits 0.
#
# The database is the daemon's: CONTROLPLANE_DATABASE__DSN when set, else the embedded
# server in the daemon's data volume. That server runs in the daemon's container, so its
# pid is not visible here and `open_database` would take it for stopped (and start a
# second one on the same data): the DSN is built from the files the daemon's server
# leaves instead (postmaster.pid line 4 is its port) and passed to the render as
# CONTROLPLANE_DATABASE__DSN. Retried until the daemon's migrations made the nodes table.
set -eu

out="${EDGE_DIR:-/srv/controlplane/kamailio}"
address="${EDGE_ADDRESS:-127.0.0.1}"
sip_port="${EDGE_SIP_PORT:-5070}"
rpc_port="${EDGE_RPC_PORT:-5071}"
wait_seconds="${EDGE_WAIT:-300}"
external="${CONTROLPLANE_DATABASE__DSN:-}"
pg="${CONTROLPLANE_DATA_DIR:-/var/lib/controlplane}/postgres"

waited=0
while :; do
  dsn="$external"
  if [ -z "$dsn" ] && [ -s "$pg/superuser-password" ]; then
    # Read, not tested first: the daemon's first start-up stops and starts its server, and
    # the file can vanish between a test and the read (set -e would end the service there).
    port=$(sed -n 4p "$pg/pgdata/postmaster.pid" 2>/dev/null) || port=""
    if [ -n "$port" ]; then
      dsn="postgresql://postgres:$(cat "$pg/superuser-password")@127.0.0.1:$port/controlplane"
    fi
  fi
  if [ -n "$dsn" ] && CONTROLPLANE_DATABASE__DSN="$dsn" controlplane edge render --out "$out" \
       --address "$address" --sip-port "$sip_port" --rpc-port "$rpc_port" --work-dir "$out" >/dev/null; then
    echo "edge-config: rendered $out/etc (Kamailio on $address:$sip_port, JSON-RPC on port $rpc_port)" >&2
    exit 0
  fi
  if [ "$waited" -ge "$wait_seconds" ]; then
    echo "edge-config: could not render the edge's configuration within ${wait_seconds} s" >&2
    exit 1
  fi
  sleep 2
  waited=$((waited + 2))
done
