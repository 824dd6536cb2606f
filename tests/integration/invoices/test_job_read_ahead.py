"""The job's reads ahead of the terms lookup (job_inputs): when a sample of the chunk's tenants
shares one period, that period's unit history, credits and taxes are read while the others are
looked up; a tenant whose period turns out to be another is read apart, with its own window, and
every tenant's usage comes from its own period's counter. Whatever the path, the invoices are
those of a run that reads everything after the lookup, on one connection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import pytest
from invoice_support import FLAT_99, NOV, OCT, calls, count_usage, jurisdiction, partner, tenant

from controlplane.db.connection import Connection
from controlplane.invoices import usage_store
from controlplane.invoices.calc import quantity_text
from controlplane.invoices.compose import Cycle
from controlplane.invoices.job_inputs import SAMPLE
from controlplane.invoices.jobs import run_invoices
from controlplane.invoices.models import BillingTerms, UnitSpan

RUN_AT = NOV + timedelta(minutes=5)
PAYG = BillingTerms("PAYG", 0, 0, 0, 0, 15_000_000, 3_000_000, 3_000_000, 20_000, net_terms_days=10,
                    profile_name="Pay as you go")
N = 3 * SAMPLE  # the sample is every third tenant


@dataclass
class Lookup:
    """October for every tenant but ``other``'s, which get their own window (and PAYG terms)."""

    other: dict[str, tuple[datetime, datetime]]

    async def __call__(self, conn: Connection, tenant_ids: Sequence[str], now: datetime) -> dict[str, Cycle]:
        return {t: Cycle(*self.other[t], PAYG) if t in self.other else Cycle(OCT, NOV, FLAT_99) for t in tenant_ids}


async def _world(pool: asyncpg.Pool) -> list[str]:
    async with pool.acquire() as conn, conn.transaction():
        pid = await partner(conn)
        ids = []
        for i in range(N):  # ids in the job's order, so which tenants the sample holds is known
            tid = await tenant(conn, pid, created=OCT - timedelta(days=60), extensions=4 + i % 3,
                               tenant_id=f"ten_ra{i:04d}")
            await calls(conn, pid, tid, OCT - timedelta(days=11), [600 + i])  # Sep 20: the other windows only
            await calls(conn, pid, tid, OCT + timedelta(days=4), [1200] * (20 + i % 7))  # in every window
            await calls(conn, pid, tid, OCT + timedelta(days=20), [300 + 60 * i], call_class="international")
            for k in range(6):  # the other windows' periods (the lookups below): Sep 20 and Oct 5 in each
                await count_usage(conn, tid, (OCT - timedelta(days=16 + k)).date(), "local",
                                  600 + i + 1200 * (20 + i % 7))
            if i % 4 == 0:
                await jurisdiction(conn, pid, tid, rate=f"{i % 9}.25", code=f"US-AR-{i}")
            ids.append(tid)
    return ids


async def _invoices(pool: asyncpg.Pool) -> dict[str, tuple[datetime, int, int, str]]:
    rows = await pool.fetch("SELECT tenant_id, period_start, total_micros, tax_micros, lines::text AS lines"
                            " FROM tenant_invoices")
    return {r["tenant_id"]: (r["period_start"], r["total_micros"], r["tax_micros"], r["lines"]) for r in rows}


async def _both_ways(pool: asyncpg.Pool, dsn: str, lookup: Lookup) -> dict[str, tuple[datetime, int, int, str]]:
    """The invoices read ahead (the module's pool) and read in line (one connection): the same."""
    ahead = await run_invoices(pool, RUN_AT, lookup=lookup, batch_size=50)
    assert (ahead.invoiced, ahead.errors) == (N, [])
    made = await _invoices(pool)
    await pool.execute("DELETE FROM tenant_invoices; DELETE FROM invoice_numbering")
    single = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        inline = await run_invoices(single, RUN_AT, lookup=lookup, batch_size=50)
    finally:
        await single.close()
    assert (inline.invoiced, inline.errors) == (N, [])
    assert await _invoices(pool) == made
    await pool.execute("DELETE FROM tenant_invoices; DELETE FROM invoice_numbering")
    return made


def _read_ahead(monkeypatch: pytest.MonkeyPatch) -> list[tuple[datetime, datetime]]:
    """The periods whose unit history was read ahead of the lookup, call by call."""
    seen: list[tuple[datetime, datetime]] = []
    real = usage_store.period_spans

    async def period_spans(conn: Connection, start: datetime, end: datetime,
                           tenant_ids: Sequence[str] | None = None) -> dict[str, list[UnitSpan]]:
        seen.append((start, end))
        return await real(conn, start, end, tenant_ids)

    monkeypatch.setattr(usage_store, "period_spans", period_spans)
    return seen


async def test_tenants_the_sample_missed_get_their_own_window(pool: asyncpg.Pool, database_dsn: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ids = await _world(pool)
    other = {ids[i]: (OCT - timedelta(days=16), OCT + timedelta(days=14)) for i in range(1, N, 9)}  # unsampled
    ahead = _read_ahead(monkeypatch)
    made = await _both_ways(pool, database_dsn, Lookup(other))
    assert ahead == [(OCT, NOV)]
    assert {t: made[t][0] for t in ids} == {t: OCT - timedelta(days=16) if t in other else OCT for t in ids}
    # Sep 20 and Oct 5 in the other window (PAYG: no base fee); Oct 5 and Oct 21 in October
    assert ids[10] in other and ids[12] not in other
    assert "minutes_international" not in made[ids[10]][3] and "base_fee" not in made[ids[10]][3]
    assert "minutes_international" in made[ids[12]][3] and "base_fee" in made[ids[12]][3]
    minutes = quantity_text(600 + 10 + 1200 * (20 + 10 % 7), 60)  # both calls, only them
    assert f'"quantity": "{minutes}"' in made[ids[10]][3]


async def test_a_sample_with_several_periods_reads_after_the_lookup(pool: asyncpg.Pool, database_dsn: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [r["id"] for r in await pool.fetch("SELECT id FROM tenants ORDER BY id")]
    assert len(ids) == N  # the first test's world
    # the sampled tenants too, over more periods than one scan each (the windows are joined)
    other = {t: (OCT - timedelta(days=16 + i // 2 % 6), OCT + timedelta(days=14 - i // 2 % 6))
             for i, t in enumerate(ids) if i % 2 == 0}
    ahead = _read_ahead(monkeypatch)
    made = await _both_ways(pool, database_dsn, Lookup(other))
    assert ahead == []
    assert len({made[t][0] for t in ids}) == 7
