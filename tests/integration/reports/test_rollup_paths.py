"""The rollup (migration 0023) follows every path that writes call records and ledger entries: the
recorder's single and batched CTE inserts, the catch-up's plain insert, a repeated ingestion, the
wallet's posting CTE; it always equals the raw rows' aggregate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from cdr_ingest.records import CallRecord
from controlplane.calls import store as calls_store
from controlplane.wallet import store as wallet_store
from controlplane.wallet.models import Entry, EntryKind

T0 = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)  # 19:30 in New York: still Oct 31 there


def _call(n: int, started: datetime, call_class: str, billable_s: int) -> CallRecord:
    return CallRecord(id=f"call_rp_{n}", linkedid=f"rp.{n}", tenant_id="ten_rp", partner_id="ptr_rp",
                      direction="outbound", caller="100", callee="+15015550100", did=None, extension="100",
                      started_at=started, answered_at=started, ended_at=started + timedelta(seconds=billable_s),
                      duration_s=billable_s, answered_s=billable_s, billable_s=billable_s,
                      wholesale_billable_s=billable_s, disposition="ANSWERED", hangup_cause=16, call_class=call_class,
                      wholesale_micros=billable_s * 150, retail_micros=billable_s * 416, wholesale_rate_id=None,
                      retail_rate_id=None)


async def _raw(pool: asyncpg.Pool) -> list[tuple[object, ...]]:
    rows = await pool.fetch(
        "SELECT (started_at AT TIME ZONE 'America/New_York')::date AS day, count(*) AS calls,"
        " sum(billable_s) FILTER (WHERE call_class = 'local') AS l, sum(billable_s) FILTER (WHERE call_class ="
        " 'international') AS i, sum(retail_micros) AS r, sum(wholesale_micros) AS w"
        " FROM call_records WHERE partner_id = 'ptr_rp' GROUP BY 1 ORDER BY 1")
    return [tuple(r) for r in rows]


async def _rolled(pool: asyncpg.Pool, table: str, key: str) -> list[tuple[object, ...]]:
    rows = await pool.fetch(
        f"SELECT {key}, calls, nullif(local_s, 0), nullif(international_s, 0),"
        f" local_retail_micros + international_retail_micros + toll_free_retail_micros + other_retail_micros,"
        f" wholesale_micros FROM {table} WHERE partner_id = 'ptr_rp' AND tenant_id = 'ten_rp' AND calls > 0 ORDER BY 1")
    return [tuple(r) for r in rows]


async def test_every_writing_path_keeps_the_rollup_equal_to_the_raw_rows(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO partners (id, name, tier, status, activated_at, created_at, timezone)"
                       " VALUES ('ptr_rp', 'R', 'BUSINESS', 'ACTIVE', '2026-01-01Z', '2026-01-01Z', 'America/New_York')")
    await pool.execute("INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status)"
                       " VALUES ('ten_rp', 'ptr_rp', 'T', 'rollup1', 'b@x.co', 'ACTIVE')")
    async with pool.acquire() as conn, conn.transaction():
        await calls_store.record_call(conn, _call(1, T0, "local", 60))
        await calls_store.record_calls(conn, [_call(2, T0 + timedelta(hours=1), "local", 120),
                                              _call(3, T0 + timedelta(hours=5), "international", 30)])
        assert await calls_store.insert_record(conn, _call(4, T0 - timedelta(days=1), "local", 6))
        assert not await calls_store.insert_record(conn, _call(4, T0 - timedelta(days=1), "local", 6))  # again
        await calls_store.record_calls(conn, [_call(2, T0 + timedelta(hours=1), "local", 120)])  # again
        await wallet_store.post_many(conn, [
            Entry("ptr_rp", EntryKind.USAGE_LOCAL, -9_000, "call:call_rp_1", "ten_rp", "call_rp_1", occurred_at=T0),
            Entry("ptr_rp", EntryKind.TOP_UP, 50_000_000, "topup:1"),
            Entry("ptr_rp", EntryKind.MONTHLY_EXTENSION, -15_000_000, "fee:1", "ten_rp")])
    raw = await _raw(pool)
    assert len(raw) == 3  # Oct 30, Oct 31 (local) and Nov 1 (local; 00:30 in New York)
    assert await _rolled(pool, "report_daily", "day") == raw
    monthly = await _rolled(pool, "report_monthly", "month")
    assert [m[1] for m in monthly] == [3, 1]  # October (local): calls 4, 1, 2; November: 3
    ledger = await pool.fetchval("SELECT -sum(amount) FROM wallet_entries WHERE partner_id = 'ptr_rp'"
                                 " AND kind <> 'top_up'")
    assert await pool.fetchval("SELECT sum(cost_micros) FROM report_daily WHERE partner_id = 'ptr_rp'") == ledger
    assert await pool.fetchval("SELECT sum(cost_micros) FROM report_monthly WHERE partner_id = 'ptr_rp'") == ledger
