"""Count caps (max extensions, max DIDs), checked inside the creating transaction.

The tenant's limits row is locked first, so two concurrent creations cannot
both take the last slot. A cap lowered below the current count is allowed and
trips the next creation (seed 003: no retroactive suspension). The creation
that brings the count to the alert threshold announces it, once per cycle, in
the same transaction. A refused creation raises ``CapTripped``: its transaction
rolls back, so the caller's ``announcer`` sends it afterwards as the ``cap_tripped``
signal, to which the limits capability reacts (``usage.cap_reached``, and
auto-suspension when the tenant has it on).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from controlplane.events import emit
from controlplane.shared.problems import Problem
from controlplane.limits import store
from controlplane.profiles import store as profiles_store
from controlplane.limits.policy import alert_event, alerts, count_cap_exceeded
from controlplane.signals import AfterCommit, CapTrip


class CapTripped(Problem):
    """409: one more extension or DID than the tenant's cap allows."""

    def __init__(self, tenant_id: str, cap_name: str, cap: int, current: int, what: str) -> None:
        super().__init__(409, f"the tenant's usage limit {cap_name} allows at most {cap} {what}; it has {current}",
                         code="usage_limit", field=cap_name,
                         extra={"limit": cap_name, "cap": cap, "current": current})
        self.tenant_id, self.cap_name, self.cap, self.current = tenant_id, cap_name, cap, current


def announcer(signal: AfterCommit[CapTrip]) -> Callable[[str, CapTripped], Awaitable[None]]:
    """The ``on_cap_tripped`` hook a capability that checks caps is built with: after the
    refusing transaction rolled back, (partner id, the refusal) goes out as ``cap_tripped``."""
    async def announce(partner_id: str, tripped: CapTripped) -> None:
        await signal.send(CapTrip(partner_id=partner_id, tenant_id=tripped.tenant_id, cap_name=tripped.cap_name,
                                  cap=tripped.cap, current=tripped.current))
    return announce


async def check_extension(conn: store.Conn, tenant_id: str) -> None:
    await _check(conn, tenant_id, "max_extensions", "extensions")


async def check_did(conn: store.Conn, tenant_id: str, wanted: int = 1, *, announce: bool = True) -> None:
    """Room for ``wanted`` more DIDs (a bulk assignment, a port's numbers); ``announce``
    False only checks (a port request: no number changes hands yet)."""
    await _check(conn, tenant_id, "max_dids", "DIDs", wanted, announce)


async def _check(conn: store.Conn, tenant_id: str, cap_name: str, what: str, wanted: int = 1,
                 announce: bool = True) -> None:
    row = await store.limits_for_update(conn, tenant_id)
    cap = None if row is None else row[cap_name]
    if cap is None:
        return
    extensions, dids = await store.counts(conn, tenant_id)
    current = extensions if cap_name == "max_extensions" else dids
    # The last of ``wanted`` would exceed the cap: the same rule as one creation.
    if count_cap_exceeded(cap, current + wanted - 1):
        raise CapTripped(tenant_id, cap_name, cap, current, what)
    limits = store.limits_from(row)
    crossed = alerts(limits, {cap_name: current + wanted}) if announce else []
    if not crossed:
        return
    tenant = await store.tenant_row(conn, tenant_id)
    assert tenant is not None  # the caller holds the tenant
    cycle = (await profiles_store.period_at(conn, tenant_id, datetime.now(UTC))).start
    for alert in crossed:
        if await store.mark_alert(conn, tenant_id, cycle, alert.cap, alert.kind.value):
            kind, data = alert_event(tenant_id, alert, limits, cycle)
            await emit(conn, kind, partner_id=tenant["partner_id"], tenant_id=tenant_id, data=data)
