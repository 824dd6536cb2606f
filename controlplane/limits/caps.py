"""Count caps (max extensions, max DIDs), checked inside the creating transaction.

The tenant's limits row is locked first, so two concurrent creations cannot
both take the last slot. A cap lowered below the current count is allowed and
trips the next creation (seed 003: no retroactive suspension).
"""

from __future__ import annotations

from controlplane.http.problems import Problem
from controlplane.limits import store
from controlplane.limits.policy import count_cap_exceeded


async def check_extension(conn: store.Conn, tenant_id: str) -> None:
    await _check(conn, tenant_id, "max_extensions", "extensions")


async def check_did(conn: store.Conn, tenant_id: str) -> None:
    await _check(conn, tenant_id, "max_dids", "DIDs")


async def _check(conn: store.Conn, tenant_id: str, cap_name: str, what: str) -> None:
    row = await store.limits_for_update(conn, tenant_id)
    cap = None if row is None else row[cap_name]
    if cap is None:
        return
    extensions, dids = await store.counts(conn, tenant_id)
    current = extensions if cap_name == "max_extensions" else dids
    if count_cap_exceeded(cap, current):
        raise Problem(409, f"the tenant's usage limit {cap_name} allows at most {cap} {what}; it has {current}",
                      code="usage_limit", field=cap_name, extra={"limit": cap_name, "cap": cap, "current": current})
