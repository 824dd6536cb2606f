"""The job's read paths: several chunks (usage filtered by tenant, read beside the unit history
on a second connection sharing the snapshot) and one chunk (usage read unfiltered, like the bare
aggregate) give the same invoices; a batch's invoice.created events (COPY from 64 on) are in
number order and wake the webhook dispatcher."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import asyncpg
from invoice_support import NOV, OCT, MonthlyLookup, calls, partner, tenant

from controlplane.events.store import NOTIFY_CHANNEL
from controlplane.invoices.jobs import run_invoices

RUN_AT = NOV + timedelta(minutes=5)


async def _world(pool: asyncpg.Pool, n: int) -> tuple[str, list[str]]:
    async with pool.acquire() as conn, conn.transaction():
        pid = await partner(conn)
        ids = []
        for i in range(n):
            tid = await tenant(conn, pid, created=OCT - timedelta(days=30), extensions=5 + i % 3)
            await calls(conn, pid, tid, OCT + timedelta(days=3), [600] * (50 + i % 4))  # 500 min + 0..3 x 10
            ids.append(tid)
        other = await tenant(conn, pid, created=OCT - timedelta(days=30))  # records outside the invoiced set
        await conn.execute("UPDATE tenants SET status = 'CANCELLED' WHERE id = $1", other)
        await calls(conn, pid, other, OCT + timedelta(days=4), [6000])
    return pid, ids


async def _totals(pool: asyncpg.Pool, pid: str) -> dict[str, tuple[int, str]]:
    rows = await pool.fetch("SELECT tenant_id, total_micros, lines::text AS lines FROM tenant_invoices"
                            " WHERE partner_id = $1", pid)
    return {r["tenant_id"]: (r["total_micros"], r["lines"]) for r in rows}


async def test_many_chunks_and_one_chunk_make_the_same_invoices_and_events_in_order(
        pool: asyncpg.Pool, database_dsn: str) -> None:
    pid, ids = await _world(pool, 80)
    woken: list[str] = []
    listener = await asyncpg.connect(database_dsn)
    await listener.add_listener(NOTIFY_CHANNEL, lambda *args: woken.append(args[2]))
    try:
        chunked = await run_invoices(pool, RUN_AT, lookup=MonthlyLookup(), chunk_size=30, batch_size=7)
        assert (chunked.invoiced, chunked.errors) == (80, [])
        first = await _totals(pool, pid)
        await pool.execute("DELETE FROM tenant_invoices WHERE partner_id = $1", pid)
        await pool.execute("DELETE FROM events WHERE partner_id = $1", pid)
        await pool.execute("DELETE FROM invoice_numbering WHERE partner_id = $1", pid)
        woken.clear()
        whole = await run_invoices(pool, RUN_AT, lookup=MonthlyLookup(), batch_size=100)
        assert (whole.invoiced, whole.errors) == (80, [])
        for _ in range(100):
            if woken:
                break
            await asyncio.sleep(0.02)
        assert woken, "the COPY of the events did not wake the dispatcher"
    finally:
        await listener.close()
    assert await _totals(pool, pid) == first
    await pool.execute("DELETE FROM tenant_invoices WHERE partner_id = $1", pid)
    single = await asyncpg.create_pool(database_dsn, min_size=1, max_size=1)  # no second connection to read on
    try:
        alone = await run_invoices(single, RUN_AT, lookup=MonthlyLookup(), chunk_size=30)
    finally:
        await single.close()
    assert (alone.invoiced, alone.errors) == (80, [])
    assert {t: v[0] for t, v in (await _totals(pool, pid)).items()} == {t: v[0] for t, v in first.items()}
    await pool.execute("DELETE FROM tenant_invoices WHERE partner_id = $1", pid)
    await pool.execute("DELETE FROM events WHERE partner_id = $1", pid)
    await pool.execute("DELETE FROM invoice_numbering WHERE partner_id = $1", pid)
    await run_invoices(pool, RUN_AT, lookup=MonthlyLookup(), batch_size=100)
    expected = {tid: 99_000_000 + (i % 3) * 20_000_000 + (i % 4) * 250_000 for i, tid in enumerate(ids)}
    assert {tid: total for tid, (total, _) in first.items()} == expected  # 10 min over at $0.025 = 0.25
    bodies = await pool.fetch("SELECT body FROM events WHERE partner_id = $1 AND type = 'invoice.created'"
                              " ORDER BY seq", pid)
    numbers = [json.loads(bytes(b["body"]))["data"]["number"] for b in bodies]
    assert numbers == [f"INV-{n:06d}" for n in range(1, 81)]
