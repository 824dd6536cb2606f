"""``invoice.overdue``: emitted once, when dunning flags the invoice (day 7), however often the job
runs (twice, four at once, after a partial payment), and delivered as a signed webhook."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
from billing_events_support import hook

from controlplane.dunning.jobs import run_dunning
from controlplane.invoices import store as invoices
from controlplane.invoices.models import InvoiceLine, InvoiceStatus
from controlplane.shared.ids import new_id
from controlplane.signals import Signals

ISSUED = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DUE = ISSUED + timedelta(days=15)


async def _invoice(pool: asyncpg.Pool) -> tuple[str, str, str]:
    partner, tenant = new_id("ptr"), new_id("ten")
    await pool.execute("INSERT INTO partners (id, name, tier) VALUES ($1, 'Reseller', 'BUSINESS')", partner)
    await pool.execute("INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status)"
                       " VALUES ($1, $2, 'Acme', $3, 'billing@acme.test', 'ACTIVE')", tenant, partner,
                       "o" + tenant[-8:])
    new = invoices.NewInvoice(
        id=invoices.new_id(), partner_id=partner, tenant_id=tenant, period_start=ISSUED - timedelta(days=31),
        period_end=ISSUED, currency="USD", subtotal_micros=99_000_000, tax_micros=0, total_micros=99_000_000,
        lines=(InvoiceLine("base_fee", "Base fee", "1", 99_000_000, 99_000_000),), tax_name=None, tax_code=None,
        tax_rate=None, net_terms_days=15, off_cycle=True)
    async with pool.acquire() as conn, conn.transaction():
        await invoices.insert_drafts(conn, [new])
        await invoices.issue(conn, [new.id], ISSUED)
    return partner, tenant, new.id


async def test_invoice_overdue_is_emitted_once_at_day_seven_and_delivered_signed(
        pool: asyncpg.Pool, database_dsn: str) -> None:
    partner, tenant, invoice = await _invoice(pool)
    signals = Signals()
    signals.freeze()
    async with hook(database_dsn, partner, "invoice.overdue") as webhook:
        await run_dunning(pool, signals, DUE + timedelta(days=6, hours=23))
        assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'invoice.overdue'"
                                   " AND partner_id = $1", partner) == 0  # not yet
        await asyncio.gather(*(run_dunning(pool, signals, DUE + timedelta(days=7)) for _ in range(4)))
        await run_dunning(pool, signals, DUE + timedelta(days=7, hours=1))
        # a partial payment (OVERDUE -> PARTIALLY_PAID) is not flagged overdue a second time
        async with pool.acquire() as conn, conn.transaction():
            partial = await invoices.apply_payment(conn, invoice, 10_000_000, "cash-1")
        assert partial.status is InvoiceStatus.PARTIALLY_PAID
        await run_dunning(pool, signals, DUE + timedelta(days=9))
        assert (await invoices.get(pool, invoice)).status is InvoiceStatus.PARTIALLY_PAID  # type: ignore[union-attr]
        rows = await pool.fetch("SELECT tenant_id FROM events WHERE type = 'invoice.overdue' AND partner_id = $1",
                                partner)
        assert [r["tenant_id"] for r in rows] == [tenant]
        [body] = await webhook.delivered(1)
        await asyncio.sleep(0.5)  # nothing else arrives
        assert len(webhook.bodies()) == 1
    assert body["type"] == "invoice.overdue" and body["partner_id"] == partner
    data = body["data"]
    assert data["invoice_id"] == invoice and data["tenant_id"] == tenant and data["status"] == "OVERDUE"
    assert data["number"] == "INV-000001" and data["total_micros"] == 99_000_000
    assert data["outstanding_micros"] == 99_000_000 and data["due_at"] == DUE.isoformat()
