"""Several daemons on one database (docs/scale.md "Daemons"): what the daemon adds to the
plugins' ``Context`` when ``node`` names one node of several.

- ``context.leases``: this process's lease holder; plugins wrap their once-only jobs with
  ``context.once(name, job)`` (controlplane.db.lease).
- this node's heartbeat (the lease ``node:<id>``), which the failover job reads.
- ``context.node_bus``: commands for the daemon of the node they concern
  (controlplane.db.node_bus), and the relays that use it: a tenant's status change reaches
  the tenant's node (its admission ends the calls a suspension forbids); a dialplan change
  (``dialplan_changed``) and a tenant's call flows change (``tenant_flows_changed``) reach every
  other node (each renders and applies its own Asterisk's dialplan from the database).

In single-node mode none of this is set: the one daemon runs everything, as before.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Mapping
from typing import Any

import structlog

from controlplane.db.lease import Holder, heartbeat
from controlplane.db.node_bus import NodeBus, node_of_tenant
from controlplane.plugins import BackgroundTask, Context
from controlplane.signals import DialplanChanged, TenantFlowsChanged, TenantStatusChanged

log = structlog.get_logger(__name__)
# Set while a relayed command runs: the signal it re-sends here must not be relayed back.
_relayed: contextvars.ContextVar[bool] = contextvars.ContextVar("node_relayed", default=False)
TENANT_STATUS = "tenant_status"
DIALPLAN = "dialplan_changed"
FLOWS = "tenant_flows_changed"


def shared_database(context: Context) -> list[BackgroundTask]:
    """Set ``leases`` and ``node_bus`` on ``context`` and subscribe the relays (before the
    plugins install: the signals freeze after); returns the background jobs to run."""
    node = context.config.node
    if not node.multi or context.pool is None:
        return []
    pool, signals = context.pool, context.signals
    holder = Holder.for_process(pool, node.id, node.lease_seconds)
    bus = NodeBus(pool, node.id)
    context.leases, context.node_bus = holder, bus
    peers = node.peers

    async def status_changed(change: TenantStatusChanged) -> None:
        if _relayed.get():
            return
        target = await node_of_tenant(pool, change.tenant_id, node.id)
        if target != node.id:
            await bus.send(target, TENANT_STATUS, {"partner_id": change.partner_id, "tenant_id": change.tenant_id,
                                                  "previous": change.previous, "status": change.status,
                                                  "cause": change.cause})
            log.info("node.relayed", kind=TENANT_STATUS, to=target, tenant_id=change.tenant_id)

    async def status_arrived(body: Mapping[str, Any]) -> None:
        token = _relayed.set(True)
        try:
            await signals.tenant_status_changed.send(TenantStatusChanged(
                str(body["partner_id"]), str(body["tenant_id"]), str(body["previous"]), str(body["status"]),
                body.get("cause")))
        finally:
            _relayed.reset(token)

    pending: list[str] = []
    noted = asyncio.Event()

    flows: set[str] = set()

    def dialplan_changed(change: DialplanChanged) -> None:
        if not _relayed.get() and peers:
            pending.append(change.by)
            noted.set()

    def tenant_flows_changed(change: TenantFlowsChanged) -> None:
        if not _relayed.get() and peers:
            flows.add(change.tenant_id)
            noted.set()

    async def flows_arrived(body: Mapping[str, Any]) -> None:
        token = _relayed.set(True)
        try:
            for tenant_id in body.get("tenants", []):
                signals.tenant_flows_changed.send(TenantFlowsChanged(str(tenant_id)))
        finally:
            _relayed.reset(token)

    async def dialplan_arrived(body: Mapping[str, Any]) -> None:
        token = _relayed.set(True)
        try:
            signals.dialplan_changed.send(DialplanChanged(str(body.get("by", "node"))))
        finally:
            _relayed.reset(token)

    async def dialplan_relay() -> None:
        """Notice handlers never wait: changes are noted, then sent to the peers from here
        (a burst within 0.2 s is one command per peer; each peer's applier debounces too)."""
        while True:
            await noted.wait()
            await asyncio.sleep(0.2)
            noted.clear()
            by = pending[-1] if pending else None
            tenants = sorted(flows)
            pending.clear()
            flows.clear()
            for peer in peers:
                if by is not None:
                    await bus.send(peer, DIALPLAN, {"by": by})
                if tenants:
                    await bus.send(peer, FLOWS, {"tenants": tenants})

    signals.tenant_status_changed.connect(status_changed)
    signals.dialplan_changed.connect(dialplan_changed)
    signals.tenant_flows_changed.connect(tenant_flows_changed)
    bus.on(TENANT_STATUS, status_arrived)
    bus.on(DIALPLAN, dialplan_arrived)
    bus.on(FLOWS, flows_arrived)
    return [lambda: heartbeat(holder), bus.run, dialplan_relay]
