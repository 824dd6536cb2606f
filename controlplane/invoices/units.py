"""The unit history's notices (migration 0030: a stretch opened or closed, on commit, to every
daemon) turned into ``signals.tenant_units_changed``: the spend cap (limits) counts a unit added
or removed mid-period at once instead of at its next load."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from controlplane.db.listen import listen_forever
from controlplane.signals import TenantUnitsChanged

log = structlog.get_logger(__name__)
CHANNEL = "controlplane_units"
RECONNECT_SECONDS = 1.0


def parse(payload: str) -> TenantUnitsChanged | None:
    """The payload is the tenant id; None for anything else (a stray NOTIFY never raises)."""
    tenant_id = payload.strip()
    if not tenant_id or len(tenant_id) > 200 or any(c.isspace() for c in tenant_id):
        return None
    return TenantUnitsChanged(tenant_id)


async def follow(pool: asyncpg.Pool, send: Callable[[TenantUnitsChanged], None], *,
                 listening_now: asyncio.Event | None = None) -> None:
    """LISTEN until cancelled; each notice sent as a signal. After a lost LISTEN, one
    ``TenantUnitsChanged(None)``: notices may have been missed meanwhile. ``listening_now`` is
    set while the LISTEN holds (tests wait for it)."""
    lost = False

    def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        change = parse(payload)
        if change is not None:
            send(change)

    def listening() -> None:
        nonlocal lost
        if listening_now is not None:
            listening_now.set()
        if lost:
            lost = False
            send(TenantUnitsChanged(None))

    def lost_it() -> None:
        nonlocal lost
        lost = True
        if listening_now is not None:
            listening_now.clear()
        log.warning("invoices.units_listen_lost", exc_info=True)

    await listen_forever(pool, CHANNEL, notified, period=RECONNECT_SECONDS, on_listening=listening,
                         on_lost=lost_it)
