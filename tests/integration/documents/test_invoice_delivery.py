"""Invoice delivery on real PostgreSQL and a real SMTP server (aiosmtpd), over real HTTP: the
issued invoice mailed with its PDF from the partner's brand, reminders, the PDF route and the
dispute evidence export."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from api_support import PLUGINS, TOKEN, Api, api_for
from mail_support import worker
from pdf_support import pdf_images, pdf_text
from PIL import Image
from smtp_support import smtp_server

from cdr_ingest.records import CallRecord
from controlplane.brand.plugin import PLUGIN as BRAND
from controlplane.calls import store as calls_store
from controlplane.collection import store as collection_store
from controlplane.collection.models import CreditNoteRecord, CreditNoteStatus
from controlplane.invoice_delivery.http import delivery_services
from controlplane.invoice_delivery.plugin import PLUGIN as INVOICE_DELIVERY
from controlplane.invoices import store as invoices_store
from controlplane.invoices.models import InvoiceLine
from controlplane.signals import InvoiceIssued, Signals

PERIOD = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
# The issue's Must-show figures.
LINES = (InvoiceLine("base_fee", "Flat Rate Starter base fee", "1", 99_000_000, 99_000_000),
         InvoiceLine("extensions", "Extensions above the 5 included", "2", 20_000_000, 40_000_000),
         InvoiceLine("dids_local", "Local DIDs above the 2 included", "0.5161", 4_000_000, 2_060_000),
         InvoiceLine("minutes_local", "Minutes above the 500 included", "120", 25_000, 3_000_000))


@dataclass
class World:
    api: Api
    pool: asyncpg.Pool
    signals: Signals


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool) -> AsyncIterator[World]:
    signals = Signals()
    async with api_for(pool, plugins=[*PLUGINS, BRAND, INVOICE_DELIVERY], signals=signals) as api:
        yield World(api, pool, signals)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (240, 80), (170, 51, 0)).save(buffer, "PNG")
    return buffer.getvalue()


async def _partner(w: World, brand: str = "Acme Phones") -> tuple[str, str]:
    pid = await w.api.partner()
    r = await w.api.call("PUT", "/v1/account/brand", partner=pid, json={
        "brand_name": brand, "from_email": "billing@acme.example", "support_email": "help@acme.example",
        "statement_descriptor": "ACME PHONES", "primary_color": "#aa3300"})
    assert r.status == 200, r.body
    resp = await w.api.client.put("/v1/account/brand/logo", data=_png(), headers={
        "Authorization": f"Bearer {TOKEN}", "X-Partner-Id": pid, "Content-Type": "image/png"})
    assert resp.status == 200, await resp.text()
    r = await w.api.call("POST", "/v1/tenants", partner=pid,
                         json={"name": "Dental Co", "billing_email": "ap@dental.example", "timezone": "UTC"})
    assert r.status == 201, r.body
    return pid, str(r.body["id"])


async def _issue(w: World, pid: str, tid: str, *, signal: bool = True, issued_at: datetime | None = None,
                 period: tuple[datetime, datetime] = PERIOD) -> str:
    """A DRAFT inserted and issued as the invoices job does, then the signal it sends after commit."""
    new = invoices_store.NewInvoice(
        id=invoices_store.new_id(), partner_id=pid, tenant_id=tid, period_start=period[0], period_end=period[1],
        currency="USD", subtotal_micros=144_060_000, tax_micros=12_250_000, total_micros=156_310_000, lines=LINES,
        tax_name="Pulaski County", tax_code="US-AR-Pulaski", tax_rate="8.5", net_terms_days=15)
    async with w.pool.acquire() as conn, conn.transaction():
        [invoice_id] = await invoices_store.insert_drafts(conn, [new])
        [issued] = await invoices_store.issue(conn, [invoice_id], issued_at or datetime.now(UTC))
    if signal:
        await w.signals.invoice_issued.send(InvoiceIssued(pid, tid, invoice_id, issued.total_micros))
    return invoice_id


async def _outbox(w: World, reference: str) -> list[asyncpg.Record]:
    return await w.pool.fetch("SELECT * FROM mail_outbox WHERE reference = $1", reference)


async def test_an_issued_invoice_is_mailed_to_the_tenant_with_its_pdf_from_the_brand(world: World) -> None:
    pid, tid = await _partner(world)
    invoice_id = await _issue(world, pid, tid)
    [queued] = await _outbox(world, f"invoice:{invoice_id}")
    assert (queued["to_address"], queued["partner_id"], queued["template"]) == (
        "ap@dental.example", pid, "tenant_invoice")
    # the signal again (a retried job, the catch-up): still one mail
    await world.signals.invoice_issued.send(InvoiceIssued(pid, tid, invoice_id, 156_310_000))
    assert await world.api.app[delivery_services].catch_up() == 0
    assert len(await _outbox(world, f"invoice:{invoice_id}")) == 1
    number = await world.pool.fetchval("SELECT number FROM tenant_invoices WHERE id = $1", invoice_id)
    async with smtp_server() as smtp:
        await worker(world.pool, smtp).run_once()
        [mail] = await smtp.wait_for(1)  # the module's first mail: nothing else is queued yet
    assert mail.rcpt_tos == ["ap@dental.example"] and mail.mail_from == "billing@acme.example"
    assert mail.message["From"] == "Acme Phones <billing@acme.example>"
    assert mail.message["Subject"] == f"Acme Phones invoice {number}: 156.31 USD"
    assert "Amount due: 156.31 USD by " in mail.text() and "Dental Co" in mail.text()
    [(filename, content_type, pdf)] = mail.attachments()
    assert (filename, content_type) == (f"{number}.pdf", "application/pdf")
    text = pdf_text(pdf)
    assert "Acme Phones" in text and "Total 156.31 USD" in text and f"No. {number}" in text
    assert "Card statements show: ACME PHONES" in text and "Support: help@acme.example" in text
    assert "Pulaski County (8.5%) 12.25 USD" in text and "Period 2026-10-01 to 2026-10-31" in text
    assert pdf_images(pdf) == 1  # the partner's logo


async def test_the_catch_up_mails_an_invoice_whose_signal_was_lost(world: World) -> None:
    pid, tid = await _partner(world)
    lost = await _issue(world, pid, tid, signal=False, issued_at=datetime.now(UTC) - timedelta(minutes=5))
    fresh = await _issue(world, pid, tid, signal=False, period=(PERIOD[1], datetime(2026, 12, 1, tzinfo=UTC)))
    assert await _outbox(world, f"invoice:{lost}") == []
    assert await world.api.app[delivery_services].catch_up() >= 1
    assert len(await _outbox(world, f"invoice:{lost}")) == 1
    # issued a moment ago: its own signal is still on its way, the catch-up leaves it alone
    assert await _outbox(world, f"invoice:{fresh}") == []


async def test_the_pdf_route_serves_the_branded_pdf_to_its_partner_only(world: World) -> None:
    pid, tid = await _partner(world)
    invoice_id = await _issue(world, pid, tid, signal=False)
    number = await world.pool.fetchval("SELECT number FROM tenant_invoices WHERE id = $1", invoice_id)
    resp = await world.api.client.get(f"/v1/invoices/{invoice_id}/pdf",
                                      headers={"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": pid})
    assert resp.status == 200 and resp.content_type == "application/pdf"
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{number}.pdf"'
    text = pdf_text(await resp.read())
    assert "Acme Phones" in text and "Total 156.31 USD" in text and "Status Sent" in text
    other, other_tenant = await _partner(world, "Other Brand")
    assert (await world.api.call("GET", f"/v1/invoices/{invoice_id}/pdf", partner=other)).status == 404
    # a key restricted to another tenant does not see it; one for this tenant does
    key, _ = await world.api.key(pid, ["billing:read"], tenant_ids=[await world.api.tenant(pid, "Another")])
    assert (await world.api.call("GET", f"/v1/invoices/{invoice_id}/pdf", token=key)).status == 404
    key, _ = await world.api.key(pid, ["billing:read"], tenant_ids=[tid])
    ok = await world.api.client.get(f"/v1/invoices/{invoice_id}/pdf", headers={"Authorization": f"Bearer {key}"})
    assert ok.status == 200 and (await ok.read()).startswith(b"%PDF")
    # a draft has no number and no document
    draft = invoices_store.NewInvoice(
        id=invoices_store.new_id(), partner_id=other, tenant_id=other_tenant, period_start=PERIOD[0],
        period_end=PERIOD[1], currency="USD", subtotal_micros=0, tax_micros=0, total_micros=0, lines=(),
        tax_name=None, tax_code=None, tax_rate=None, net_terms_days=15)
    async with world.pool.acquire() as conn, conn.transaction():
        await invoices_store.insert_drafts(conn, [draft])
    r = await world.api.call("GET", f"/v1/invoices/{draft.id}/pdf", partner=other)
    assert r.status == 409 and r.body["code"] == "invoice_not_issued"
    assert (await world.api.call("GET", "/v1/invoices/no_such/pdf", partner=pid)).status == 404


async def test_a_reminder_is_mailed_once_a_day_and_only_for_an_unpaid_invoice(world: World) -> None:
    pid, tid = await _partner(world)
    invoice_id = await _issue(world, pid, tid, signal=False)
    first = await world.api.call("POST", f"/v1/invoices/{invoice_id}/reminders", partner=pid)
    assert first.status == 202 and first.body["queued"] is True and first.body["to"] == "ap@dental.example"
    again = await world.api.call("POST", f"/v1/invoices/{invoice_id}/reminders", partner=pid)
    assert again.status == 200 and again.body["queued"] is False and again.body["reference"] == first.body["reference"]
    assert first.body["reference"] == f"invoice:{invoice_id}:reminder:{datetime.now(UTC).date().isoformat()}"
    assert len(await _outbox(world, first.body["reference"])) == 1
    # the next day, another one
    tomorrow = await world.api.app[delivery_services].remind(pid, invoice_id, None,
                                                            now=datetime.now(UTC) + timedelta(days=1))
    assert tomorrow.queued and tomorrow.reference != first.body["reference"]
    pending = await world.pool.fetchval("SELECT count(*) FROM mail_outbox WHERE status = 'PENDING'")
    async with smtp_server() as smtp:
        await worker(world.pool, smtp).run_once()
        received = await smtp.wait_for(pending)
    mails = [m for m in received if m.message["Subject"].startswith("Reminder:")]
    assert len(mails) == 2 and all(m.message["Subject"].startswith("Reminder: Acme Phones invoice ") for m in mails)
    assert all("156.31 USD" in m.text() and len(m.attachments()) == 1 for m in mails)
    assert "Total 156.31 USD" in pdf_text(mails[0].attachments()[0][2])
    # paid in full: no reminder
    async with world.pool.acquire() as conn, conn.transaction():
        await invoices_store.apply_payment(conn, invoice_id, 156_310_000, "test:paid")
    paid = await world.api.call("POST", f"/v1/invoices/{invoice_id}/reminders", partner=pid)
    assert paid.status == 409 and paid.body["code"] == "invoice_not_unpaid"
    body = await world.api.call("POST", f"/v1/invoices/{invoice_id}/reminders", partner=pid, json={"x": 1})
    assert body.status == 422


def _call(tid: str, pid: str, n: int, started: datetime, call_class: str, billable_s: int) -> CallRecord:
    return CallRecord(id=f"call_{tid}_{n}", linkedid=f"{tid}.{n}", tenant_id=tid, partner_id=pid,
                      direction="outbound", caller="100", callee="+15015550100", did=None, extension="100",
                      started_at=started, answered_at=started if billable_s else None,
                      ended_at=started + timedelta(seconds=billable_s), duration_s=billable_s,
                      answered_s=billable_s, billable_s=billable_s, wholesale_billable_s=billable_s,
                      disposition="ANSWERED" if billable_s else "NO_ANSWER", hangup_cause=16, call_class=call_class,
                      wholesale_micros=0, retail_micros=billable_s * 416, wholesale_rate_id=None,
                      retail_rate_id=None)


async def test_the_evidence_export_holds_the_invoice_its_pdf_and_the_calls_behind_it(world: World) -> None:
    pid, tid = await _partner(world)
    _, elsewhere = await _partner(world, "Someone Else")
    invoice_id = await _issue(world, pid, tid, signal=False)
    start = PERIOD[0]
    calls = [_call(tid, pid, 1, start, "local", 60),  # the period's first instant: in
             _call(tid, pid, 2, start + timedelta(days=3), "international", 125),
             _call(tid, pid, 3, start + timedelta(days=4), "local", 0),  # unanswered: nothing billed
             _call(tid, pid, 4, start + timedelta(days=5), "internal", 300),  # internal: never billed
             _call(tid, pid, 5, PERIOD[1], "local", 60),  # the next period's
             _call(tid, pid, 6, start - timedelta(seconds=1), "local", 60)]  # the previous period's
    async with world.pool.acquire() as conn, conn.transaction():
        for c in calls:
            await calls_store.insert_record(conn, c)
        await calls_store.insert_record(conn, _call(elsewhere, pid, 7, start + timedelta(days=1), "local", 60))
    resp = await world.api.client.get(f"/v1/invoices/{invoice_id}/evidence",
                                      headers={"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": pid})
    assert resp.status == 200 and resp.content_type == "application/zip"
    number = await world.pool.fetchval("SELECT number FROM tenant_invoices WHERE id = $1", invoice_id)
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{number}-evidence.zip"'
    archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    assert archive.namelist() == ["invoice.json", f"{number}.pdf", "calls.csv", "manifest.json"]
    rows = list(csv.DictReader(io.StringIO(archive.read("calls.csv").decode())))
    assert [r["id"] for r in rows] == [calls[0].id, calls[1].id]
    record = json.loads(archive.read("invoice.json"))
    assert record["invoice"]["id"] == invoice_id and record["invoice"]["number"] == number
    assert record["invoice"]["total_micros"] == 156_310_000 and len(record["invoice"]["lines"]) == 4
    assert record["usage"] == [
        {"call_class": "international", "calls": 1, "billable_seconds": 125, "retail_micros": 125 * 416},
        {"call_class": "local", "calls": 1, "billable_seconds": 60, "retail_micros": 60 * 416}]
    assert record["tenant"]["billing_email"] == "ap@dental.example" and record["issuer"] == "Acme Phones"
    assert "Total 156.31 USD" in pdf_text(archive.read(f"{number}.pdf"))
    manifest = json.loads(archive.read("manifest.json"))
    assert [f["name"] for f in manifest["files"]] == archive.namelist()[:3]
    # another partner's invoice is not found
    assert (await world.api.call("GET", f"/v1/invoices/{invoice_id}/evidence",
                                 partner=(await _partner(world, "Third"))[0])).status == 404


async def test_a_credit_note_pdf_once_the_refund_went_through(world: World) -> None:
    pid, tid = await _partner(world)
    invoice_id = await _issue(world, pid, tid, signal=False)
    number = await world.pool.fetchval("SELECT number FROM tenant_invoices WHERE id = $1", invoice_id)
    note = CreditNoteRecord(credit_note_id=f"cn_{invoice_id}", partner_id=pid, tenant_id=tid, invoice_id=invoice_id,
                            reference=f"refund:{invoice_id}", status=CreditNoteStatus.PENDING, number=None,
                            amount_micros=20_000_000, usage_credit_micros=0, currency="USD", reason=None,
                            failure=None, created_at=datetime.now(UTC), issued_at=None)
    async with world.pool.acquire() as conn, conn.transaction():
        await collection_store.insert_credit_note(conn, note)
    pending = await world.api.call("GET", f"/v1/credit-notes/{note.credit_note_id}/pdf", partner=pid)
    assert pending.status == 409 and pending.body["code"] == "credit_note_not_issued"
    async with world.pool.acquire() as conn, conn.transaction():
        note_number = await collection_store.issue_credit_note(conn, note.credit_note_id, pid)
    resp = await world.api.client.get(f"/v1/credit-notes/{note.credit_note_id}/pdf",
                                      headers={"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": pid})
    assert resp.status == 200 and resp.content_type == "application/pdf"
    text = pdf_text(await resp.read())
    assert "Credit note" in text and f"No. {note_number}" in text and f"Credits invoice {number}" in text
    assert "Acme Phones" in text and "Total 20.00 USD" in text
    other = (await _partner(world, "Other"))[0]
    assert (await world.api.call("GET", f"/v1/credit-notes/{note.credit_note_id}/pdf", partner=other)).status == 404
