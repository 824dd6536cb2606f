"""Tenants with the same unit history share one spans list (grouped by PostgreSQL) and so one
computation of their base-fee and unit lines; tenants whose history differs, in the same run,
keep their own lines and amounts."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from invoice_support import NOV, OCT, MonthlyLookup, add_did, partner, tenant

from controlplane.invoices import usage_store
from controlplane.invoices.jobs import run_invoices
from controlplane.invoices.models import UnitKind, UnitSpan
from controlplane.invoices.usage_store import Window

RUN_AT = NOV + timedelta(minutes=5)
BEFORE = OCT - timedelta(days=30)


async def test_same_history_shares_a_list_and_different_ones_keep_their_lines(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        pid = await partner(conn)
        a = await tenant(conn, pid, created=BEFORE, extensions=7, dids=2)
        b = await tenant(conn, pid, created=BEFORE, extensions=7, dids=2)
        c = await tenant(conn, pid, created=BEFORE, extensions=7, dids=2)
        await add_did(conn, pid, c, OCT + timedelta(days=15, hours=10))  # Oct 16..31: 16 of 31 days
        d = await tenant(conn, pid, created=BEFORE, extensions=5)
        async with conn.transaction():
            await usage_store.load_windows(conn, [Window(t, OCT, NOV) for t in (a, b, c, d)])
            spans = await usage_store.spans(conn)
    assert spans[a] is spans[b]
    assert spans[a] == [UnitSpan(UnitKind.DID_LOCAL, "", OCT, NOV, 2), UnitSpan(UnitKind.EXTENSION, "", OCT, NOV, 7)]
    assert spans[c] == [UnitSpan(UnitKind.DID_LOCAL, "", OCT, NOV, 2),
                        UnitSpan(UnitKind.DID_LOCAL, "", OCT + timedelta(days=15, hours=10), NOV, 1),
                        UnitSpan(UnitKind.EXTENSION, "", OCT, NOV, 7)]
    assert spans[d] == [UnitSpan(UnitKind.EXTENSION, "", OCT, NOV, 5)]

    report = await run_invoices(pool, RUN_AT, lookup=MonthlyLookup())
    assert (report.invoiced, report.errors) == (4, [])
    rows = await pool.fetch("SELECT tenant_id, subtotal_micros FROM tenant_invoices WHERE partner_id = $1", pid)
    # FLAT_99: $99 including 5 extensions and 2 DIDs, $20 per extension and $4 per DID above them
    assert {r["tenant_id"]: r["subtotal_micros"] for r in rows} == {
        a: 139_000_000, b: 139_000_000, c: 141_060_000, d: 99_000_000}
