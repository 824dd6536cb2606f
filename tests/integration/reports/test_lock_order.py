"""The recorder and the wallet's fee posting take their shared rows in one order: the partner's
wallet row, then the report rows (migration 0023's triggers). The recorder's first statement
writes the call records, whose trigger locks the (partner, tenant, day) report rows; a fee posted
meanwhile for the same tenant and day locks the wallet row and then waits for that report row.
Had the recorder then gone for the wallet (its debit), each would wait for the other: PostgreSQL
kills one (seen in the multi-node failover runs). Here the fee waits, then both commit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from cdr_ingest.records import CallRecord
from controlplane.calls import store as calls_store
from controlplane.wallet import store as wallet_store
from controlplane.wallet.models import Entry, EntryKind


def _call(started: datetime) -> CallRecord:
    return CallRecord(id="call_lo_1", linkedid="lo.1", tenant_id="ten_lo", partner_id="ptr_lo", direction="outbound",
                      caller="100", callee="+15015550100", did=None, extension="100", started_at=started,
                      answered_at=started, ended_at=started + timedelta(seconds=60), duration_s=60, answered_s=60,
                      billable_s=60, wholesale_billable_s=60, disposition="ANSWERED", hangup_cause=16,
                      call_class="local", wholesale_micros=9_000, retail_micros=25_000, wholesale_rate_id=None,
                      retail_rate_id=None)


async def _waiting_for_a_lock(pool: asyncpg.Pool, pid: int) -> None:
    for _ in range(200):
        if await pool.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the fee posting never waited for a lock")


async def test_a_fee_posted_while_calls_are_recorded_waits_instead_of_deadlocking(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO partners (id, name, tier, status, activated_at, created_at)"
                       " VALUES ('ptr_lo', 'R', 'BUSINESS', 'ACTIVE', '2026-01-01Z', '2026-01-01Z')")
    await pool.execute("INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status)"
                       " VALUES ('ten_lo', 'ptr_lo', 'T', 'lockord1', 'b@x.co', 'ACTIVE')")
    async with pool.acquire() as conn:
        await wallet_store.post(conn, Entry("ptr_lo", EntryKind.TOP_UP, 50_000_000, "topup:lo"))
    call = _call(datetime.now(UTC))  # the same day as the fee: the same report row
    recorder, poster = await pool.acquire(), await pool.acquire()
    try:
        recording = recorder.transaction()
        await recording.start()
        assert await calls_store.record_calls(recorder, [call]) == {("lo.1", ""): (False, False)}

        async def post_fee() -> None:
            async with poster.transaction():
                await wallet_store.post_many(poster, [
                    Entry("ptr_lo", EntryKind.MONTHLY_EXTENSION, -15_000_000, "fee:lo", "ten_lo")])

        fee = asyncio.create_task(post_fee())
        await _waiting_for_a_lock(pool, poster.get_server_pid())
        await calls_store.settle_many(recorder, [Entry("ptr_lo", EntryKind.USAGE_LOCAL, -9_000, "call:call_lo_1",
                                                       "ten_lo", "call_lo_1", occurred_at=call.started_at)], {})
        await recording.commit()
        await asyncio.wait_for(fee, 10)
    finally:
        await pool.release(recorder)
        await pool.release(poster)
    assert await pool.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = 'ptr_lo'") == \
        50_000_000 - 15_000_000 - 9_000
    assert await pool.fetchval("SELECT cost_micros FROM report_daily WHERE partner_id = 'ptr_lo'"
                               " AND tenant_id = 'ten_lo'") == 15_000_000 + 9_000
