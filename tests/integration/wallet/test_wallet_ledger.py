"""The ledger on a real PostgreSQL: a reference posts once, balances always equal the sum of
entries (after concurrent top-ups, call debits and unit fees), pg_notify on commit only,
trial partners draw nothing."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from localstripe_support import LocalStripe
from wallet_support import ledger_mismatches

from controlplane.calls import store as calls_store
from controlplane.wallet import store
from controlplane.wallet.models import Entry, EntryKind, call_reference, usage_kind

Api = Any  # conftest.Api


async def _post(pool: asyncpg.Pool, entry: Entry) -> Any:
    async with pool.acquire() as conn, conn.transaction():
        return await store.post(conn, entry)


async def test_the_same_reference_twice_is_one_entry(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    entry = Entry(pid, EntryKind.REFUND, 4_000_000, "refund:inv-1", note="refund")
    first, second = await asyncio.gather(_post(pool, entry), _post(pool, entry))
    assert sorted([first.created, second.created]) == [False, True]
    assert first.entry_id == second.entry_id and {first.amount_micros, second.amount_micros} == {4_000_000}
    # Another amount under the same reference changes nothing: the stored one is answered.
    third = await _post(pool, Entry(pid, EntryKind.REFUND, 9, "refund:inv-1"))
    assert (third.created, third.amount_micros, third.balance_micros) == (False, 4_000_000, 4_000_000)
    assert await pool.fetchval("SELECT count(*) FROM wallet_entries WHERE partner_id = $1", pid) == 1
    # A reference is per partner: another partner may use it.
    assert (await _post(pool, Entry(await api.partner(), EntryKind.REFUND, 1, "refund:inv-1"))).created


async def test_post_many_and_the_notification_on_commit_only(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    heard: list[str] = []
    listener = await pool.acquire()

    def hear(*args: Any) -> None:
        heard.append(args[3])

    await listener.add_listener(store.CHANNEL, hear)
    try:
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await store.post(conn, Entry(pid, EntryKind.TOP_UP, 5, "topup:rolled-back"))
            await tx.rollback()
        async with pool.acquire() as conn, conn.transaction():
            posted = await store.post_many(conn, [
                Entry(pid, EntryKind.MONTHLY_EXTENSION, -3_000_000, "fee:2026-05:ext:e1", tenant_id="t1"),
                Entry(pid, EntryKind.MONTHLY_DID_LOCAL, -1_750_000, "fee:2026-05:did:d1", tenant_id="t1"),
                Entry(pid, EntryKind.MONTHLY_EXTENSION, -3_000_000, "fee:2026-05:ext:e1")])  # a repeat in the batch
        assert [p.created for p in posted] == [True, True, False]
        assert {p.balance_micros for p in posted} == {-4_750_000}
        for _ in range(50):
            if heard:
                break
            await asyncio.sleep(0.02)
        assert heard == [f"{pid} -4750000"]
    finally:
        await listener.remove_listener(store.CHANNEL, hear)
        await pool.release(listener)
    assert await pool.fetchval("SELECT count(*) FROM wallet_entries WHERE reference = 'topup:rolled-back'") == 0


async def test_the_balance_is_the_sum_after_concurrent_top_ups_calls_and_fees(
        api: Api, localstripe: LocalStripe, pool: asyncpg.Pool) -> None:
    """Top-ups through localstripe, call debits through the recorder's statement and unit fees,
    all at once: every balance equals its entries (the operator check finds nothing)."""
    pid, trial = await api.partner(), await api.partner(active=False)
    await api.add_card(localstripe, pid)
    tenant = await _tenant(api, pid)
    trial_tenant = await _tenant(api, trial)
    cycle = date.today().replace(day=1)

    async def calls(n: int, partner: str, tenant_id: str) -> None:
        async with pool.acquire() as conn, conn.transaction():
            debits, usage = [], {}
            for i in range(n):
                call_id = f"call_{secrets.token_hex(12)}"
                cls = ("local", "toll_free", "international", "premium")[i % 4]
                debits.append(Entry(partner, usage_kind(cls), -(1_000 + i), call_reference(call_id),
                                    tenant_id=tenant_id, call_id=call_id, occurred_at=datetime.now(UTC)))
                usage.setdefault((tenant_id, cycle, cls), calls_store.UsageSum()).calls += 1
            await calls_store.settle_many(conn, debits, usage)

    async def fees(i: int) -> None:
        await _post(pool, Entry(pid, EntryKind.MONTHLY_EXTENSION, -2_000_000, f"fee:2026-05:ext:e{i}",
                                tenant_id=tenant))

    work = [api.top_up(pid, 10_000_000 * (i + 1), key=f"ledger-{i}") for i in range(6)]
    work += [calls(20, pid, tenant) for _ in range(10)] + [calls(5, trial, trial_tenant) for _ in range(3)]
    work += [fees(i) for i in range(10)] + [fees(i) for i in range(10)]  # each fee twice: posted once
    results = await asyncio.gather(*work)
    assert all(r.status == 201 for r in results[:6]), [r.body for r in results[:6]]
    entries = await pool.fetch("SELECT kind, amount, tenant_id FROM wallet_entries WHERE partner_id = $1", pid)
    assert len(entries) == 6 + 200 + 10
    assert {e["kind"] for e in entries} == {"top_up", "usage_local", "usage_toll_free", "usage_international",
                                            "monthly_extension"}
    assert all(e["tenant_id"] == tenant for e in entries if e["kind"] != "top_up")
    expected = sum(10_000_000 * (i + 1) for i in range(6)) - 10 * sum(1_000 + i for i in range(20)) - 20_000_000
    assert await pool.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1", pid) == expected
    assert await ledger_mismatches(pool) == []
    # The TRIAL partner's calls counted usage and drew nothing.
    assert await pool.fetchval("SELECT count(*) FROM wallet_entries WHERE partner_id = $1", trial) == 0
    assert await pool.fetchval("SELECT sum(calls) FROM tenant_usage WHERE tenant_id = $1", trial_tenant) == 15


async def test_the_check_finds_a_balance_moved_outside_the_ledger(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    await _post(pool, Entry(pid, EntryKind.TOP_UP, 1_000_000, "topup:check"))
    await pool.execute("UPDATE partner_wallets SET balance = balance + 1 WHERE partner_id = $1", pid)
    try:
        assert await ledger_mismatches(pool) == [(pid, 1_000_001, 1_000_000)]
    finally:
        await pool.execute("UPDATE partner_wallets SET balance = balance - 1 WHERE partner_id = $1", pid)
    assert await ledger_mismatches(pool) == []


async def _tenant(api: Api, partner: str) -> str:
    r = await api.call("POST", "/v1/tenants", partner, {"name": f"T {secrets.token_hex(3)}",
                                                        "billing_email": "b@x.co"})
    assert r.status == 201, r.body
    return str(r.body["id"])

