"""The invoice job and the invoice store on PostgreSQL: the figures, exactly once per period,
unit history from the triggers, gapless numbers, payments, refunds, credits."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import asyncpg
import pytest
from invoice_support import NOV, OCT, MonthlyLookup, add_did, calls, jurisdiction, partner, tenant

from controlplane.invoices import status, store
from controlplane.invoices.jobs import run_invoices
from controlplane.invoices.models import InvoiceStatus, LineKind

RUN_AT = NOV + timedelta(minutes=5)



async def test_the_scenario_invoice_once_with_its_number_due_date_and_event(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        pid = await partner(conn)
        tid = await tenant(conn, pid, created=OCT - timedelta(days=60), extensions=7, dids=2)
        await add_did(conn, pid, tid, OCT + timedelta(days=15, hours=10))  # present Oct 16..31: 16 days
        await calls(conn, pid, tid, OCT + timedelta(days=3), [3600] * 10 + [1200])  # 620 min
        await calls(conn, pid, tid, OCT + timedelta(days=4), [60] * 5, call_class="internal")  # never billed
        await calls(conn, pid, tid, NOV + timedelta(hours=1), [600])  # next period
        await jurisdiction(conn, pid, tid)
    first = await run_invoices(pool, RUN_AT, lookup=MonthlyLookup())
    again = await run_invoices(pool, RUN_AT, lookup=MonthlyLookup())
    assert (first.invoiced, first.errors, again.invoiced, again.already) == (1, [], 0, 1)
    rows = await pool.fetch("SELECT id FROM tenant_invoices WHERE tenant_id = $1", tid)
    assert len(rows) == 1
    invoice = await store.get(pool, rows[0]["id"])
    assert invoice is not None
    assert [(line.kind, line.quantity, line.amount_micros) for line in invoice.lines] == [
        ("base_fee", "1", 99_000_000), ("extensions", "2", 40_000_000), ("dids_local", "0.5161", 2_060_000),
        ("minutes_included", "500", 0), ("minutes_local", "120", 3_000_000)]
    assert (invoice.subtotal_micros, invoice.tax_micros, invoice.total_micros) == (
        144_060_000, 12_250_000, 156_310_000)
    assert (invoice.status, invoice.number, invoice.tax_rate, invoice.tax_name) == (
        InvoiceStatus.SENT, "INV-000001", "8.5", "Pulaski County")
    assert invoice.issued_at == RUN_AT and invoice.due_at == RUN_AT + timedelta(days=15)
    events = await pool.fetch("SELECT body FROM events WHERE type = 'invoice.created' AND tenant_id = $1", tid)
    assert len(events) == 1
    assert json.loads(events[0]["body"])["data"]["total_micros"] == 156_310_000


async def test_units_deleted_or_moved_are_billed_for_the_days_they_were_there(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        pid = await partner(conn)
        tid = await tenant(conn, pid, created=OCT - timedelta(days=60))
        other = await tenant(conn, pid, created=OCT - timedelta(days=60))
        await conn.execute("INSERT INTO extensions (id, tenant_id, number, display_name, sip_ha1, created_at)"
                           " VALUES ('ext_gone', $1, '200', 'x', 'ha1', $2)", tid, OCT - timedelta(days=1))
        await conn.execute("DELETE FROM extensions WHERE id = 'ext_gone'")
        did = await add_did(conn, pid, tid, OCT - timedelta(days=1))
        await conn.execute("UPDATE dids SET tenant_id = $2 WHERE id = $1", did, other)
        history = await conn.fetch("SELECT tenant_id, unit_kind, ended_at IS NULL AS open FROM unit_history"
                                   " WHERE unit_id IN ('ext_gone', $1) ORDER BY id", did)
    assert [(r["tenant_id"], r["unit_kind"], r["open"]) for r in history] == [
        (tid, "extension", False), (tid, "did_local", False), (other, "did_local", True)]


async def test_two_runs_at_once_make_one_invoice_per_tenant(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        pid = await partner(conn)
        ids = [await tenant(conn, pid, created=OCT - timedelta(days=5), extensions=6) for _ in range(30)]
    reports = await asyncio.gather(*(run_invoices(pool, RUN_AT, lookup=MonthlyLookup(), batch_size=7)
                                     for _ in range(3)))
    assert all(r.errors == [] for r in reports)
    rows = await pool.fetch("SELECT tenant_id, count(*) AS n FROM tenant_invoices WHERE partner_id = $1"
                            " GROUP BY tenant_id", pid)
    assert {r["tenant_id"]: r["n"] for r in rows} == {t: 1 for t in ids}
    numbers = sorted(r["number"] for r in await pool.fetch(
        "SELECT number FROM tenant_invoices WHERE partner_id = $1", pid))
    assert numbers == [f"INV-{n:06d}" for n in range(1, 31)]  # gapless per partner


async def test_a_tenant_created_after_the_period_or_cancelled_gets_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        pid = await partner(conn)
        late = await tenant(conn, pid, created=NOV - timedelta(seconds=1) + timedelta(seconds=2))
        gone = await tenant(conn, pid, created=OCT - timedelta(days=5))
        await conn.execute("UPDATE tenants SET status = 'CANCELLED', cancelled_at = $2 WHERE id = $1", gone, OCT)
    await run_invoices(pool, RUN_AT, lookup=MonthlyLookup())
    assert await pool.fetchval("SELECT count(*) FROM tenant_invoices WHERE tenant_id = ANY($1::text[])",
                               [late, gone]) == 0


async def test_payments_refunds_statuses_and_credits_on_the_next_invoice(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        pid = await partner(conn)
        tid = await tenant(conn, pid, created=OCT - timedelta(days=60), extensions=5)
    await run_invoices(pool, RUN_AT, lookup=MonthlyLookup())
    invoice_id = await pool.fetchval("SELECT id FROM tenant_invoices WHERE tenant_id = $1", tid)
    async with pool.acquire() as conn, conn.transaction():
        half = await store.apply_payment(conn, invoice_id, 50_000_000, "pay:1")
        again = await store.apply_payment(conn, invoice_id, 50_000_000, "pay:1")
    assert (half.status, half.paid_micros, again.paid_micros) == (InvoiceStatus.PARTIALLY_PAID, 50_000_000,
                                                                 50_000_000)
    async with pool.acquire() as conn, conn.transaction():
        paid = await store.apply_payment(conn, invoice_id, 49_000_000, "pay:2")
    assert (paid.status, paid.paid_micros) == (InvoiceStatus.PAID, 99_000_000)
    async with pool.acquire() as conn, conn.transaction():
        refunded = await store.apply_refund(conn, invoice_id, 9_000_000, "re:1")
        assert (await store.apply_refund(conn, invoice_id, 9_000_000, "re:1")).credited_micros == 9_000_000
        with pytest.raises(store.RefundTooLarge):
            await store.apply_refund(conn, invoice_id, 90_000_001, "re:2")
        await store.add_credit(conn, pid, tid, 9_000_000, "credit:re:1", "Refunded usage")
        await store.add_credit(conn, pid, tid, 9_000_000, "credit:re:1", "Refunded usage")  # once
    assert refunded.credited_micros == 9_000_000
    with pytest.raises(status.TransitionRefused):
        async with pool.acquire() as conn, conn.transaction():
            await store.set_status(conn, invoice_id, InvoiceStatus.VOID)
    december = NOV.replace(month=12) + timedelta(minutes=5)
    await run_invoices(pool, december, lookup=MonthlyLookup())
    nxt = await store.get(pool, await pool.fetchval(
        "SELECT id FROM tenant_invoices WHERE tenant_id = $1 AND period_start = $2", tid, NOV))
    assert nxt is not None
    assert [(line.kind, line.amount_micros) for line in nxt.lines] == [
        ("base_fee", 99_000_000), (LineKind.CREDIT.value, -9_000_000)]
    assert (nxt.subtotal_micros, nxt.number) == (90_000_000, "INV-000002")
    assert await pool.fetchval("SELECT count(*) FROM tenant_invoice_items WHERE tenant_id = $1"
                               " AND invoice_id IS NULL", tid) == 0
    due = await store.unpaid_due_before(pool, december + timedelta(days=16))
    assert [i.id for i in due if i.tenant_id == tid] == [nxt.id]
