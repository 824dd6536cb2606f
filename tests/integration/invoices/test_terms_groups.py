"""``terms.last_cycles`` reads the tenants grouped (``profiles.pricing_groups``: one period
computation per group of tenants that price alike); it must give every tenant exactly the cycle
that the per-tenant rule gives (``last_cycle`` over ``tenant_pricing_many``), whatever mix of time
zones, creation times, anchor overrides, profile switches and missing profiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from invoice_support import partner, tenant

from controlplane.db.connection import Connection
from controlplane.invoices import terms
from controlplane.profiles import store as profiles

NOW = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)
SHARED = datetime(2026, 8, 14, 9, 30, tzinfo=UTC)


async def _world(conn: Connection) -> list[str]:
    ids: list[str] = []
    for _ in range(2):
        pid = await partner(conn)
        await conn.execute("SELECT billing_profiles_create_defaults($1)", pid)
        flat, payg = [await conn.fetchval("SELECT id FROM billing_profiles WHERE partner_id = $1 AND builtin = $2",
                                          pid, kind) for kind in ("flat", "payg")]
        for i, (zone, created) in enumerate([("UTC", SHARED), ("UTC", SHARED), ("UTC", SHARED),
                                             ("America/New_York", SHARED), ("America/New_York", SHARED),
                                             ("Asia/Kolkata", SHARED + timedelta(hours=20)),
                                             ("UTC", SHARED + timedelta(days=3)), ("UTC", SHARED),
                                             ("UTC", datetime(2026, 10, 20, tzinfo=UTC)), ("UTC", SHARED)]):
            tid = await tenant(conn, pid, created=created)
            await conn.execute("UPDATE tenants SET timezone = $2 WHERE id = $1", tid, zone)
            await conn.execute("DELETE FROM tenant_profile_assignments WHERE tenant_id = $1", tid)
            if i == 9:  # no profile at all: left out
                ids.append(tid)
                continue
            await conn.execute("INSERT INTO tenant_profile_assignments (tenant_id, effective_from, profile_id)"
                               " VALUES ($1, $2, $3)", tid, created, flat if i % 2 == 0 else payg)
            if i == 2:  # switched to PAYG mid-October: a short period, other terms
                await conn.execute("INSERT INTO tenant_profile_assignments (tenant_id, effective_from, profile_id)"
                                   " VALUES ($1, '2026-10-14T00:00Z', $2)", tid, payg)
            if i == 7:  # an explicit anchor day wins over the anniversary
                await conn.execute("INSERT INTO tenant_limits (tenant_id, billing_anchor_day) VALUES ($1, 20)"
                                   " ON CONFLICT (tenant_id) DO UPDATE SET billing_anchor_day = 20", tid)
            ids.append(tid)
    return ids


async def test_grouped_lookup_gives_each_tenant_the_per_tenant_cycle(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        ids = await _world(conn)
        grouped = await terms.last_cycles(conn, ids, NOW)
        expected = {tid: cycle for tid, pricing in (await profiles.tenant_pricing_many(conn, ids)).items()
                    if (cycle := terms.last_cycle(pricing, NOW)) is not None}
    assert grouped == expected
    assert ids[9] not in grouped and ids[19] not in grouped  # no profile
    assert len(grouped) >= len(ids) - 4  # and the two created on 20 October: no period ended yet
    assert len({(c.start, c.end) for c in grouped.values()}) >= 4  # the mix did make different periods
    # tenants alike share one cycle object (the job computes fixed lines once per object)
    assert len({id(c) for c in grouped.values()}) == len(set(grouped.values())) < len(grouped)
