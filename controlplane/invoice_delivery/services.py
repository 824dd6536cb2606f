"""Decides invoice delivery: the PDF of an issued invoice, its mail, reminders, evidence.

Reads the invoice (invoices.store), the tenant (tenants.store), the partner's brand
(brand.store) and the call records (calls.store); renders with controlplane.documents off the
event loop; queues mail through mail.store.enqueue, idempotent by reference:
``invoice:<id>`` for the issued invoice, ``invoice:<id>:reminder:<UTC day>`` for reminders.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg
import structlog

from cdr_ingest.records import CallRecord
from controlplane.brand import store as brand_store
from controlplane.calls import store as calls_store
from controlplane.collection import store as collection_store
from controlplane.db.connection import Connection, Executor
from controlplane.documents.models import InvoiceDocument, Logo
from controlplane.documents.render import render
from controlplane.invoice_delivery import compose, store
from controlplane.invoice_delivery.compose import Billed, BrandFacts
from controlplane.invoice_delivery.evidence import Evidence
from controlplane.invoice_delivery.models import Reminder
from controlplane.invoices import store as invoices_store
from controlplane.invoices.models import Invoice
from controlplane.invoices.usage_store import BILLED_CLASSES
from controlplane.mail import store as mail_store
from controlplane.shared.problems import Problem
from controlplane.tenants import store as tenants_store

log = structlog.get_logger(__name__)
INVOICE_TEMPLATE = "tenant_invoice"
REMINDER_TEMPLATE = "tenant_invoice_reminder"


def _not_found(invoice_id: str) -> Problem:
    return Problem(404, f"no invoice {invoice_id} for this partner", code="not_found")


@dataclass(frozen=True)
class Prepared:
    invoice: Invoice
    tenant: Billed
    brand: BrandFacts
    document: InvoiceDocument

    @property
    def filename(self) -> str:
        return compose.filename(self.document.number)


async def brand_facts(conn: Executor, partner_id: str) -> BrandFacts:
    brand = await brand_store.brand(conn, partner_id)
    if brand is None:
        raise Problem(404, f"no partner {partner_id}", code="not_found")
    logo = None
    if brand.logo is not None:
        found = await brand_store.logo(conn, partner_id)
        logo = None if found is None else Logo(content_type=found[0], data=found[1])
    return BrandFacts(brand_name=brand.brand_name, support_email=brand.support_email,
                      statement_descriptor=brand.statement_descriptor, primary_color=brand.primary_color, logo=logo)


@dataclass(frozen=True)
class DeliveryServices:
    pool: asyncpg.Pool

    async def _read(self, conn: Connection, invoice_id: str, partner_id: str | None,
                    tenants: frozenset[str] | None) -> Prepared:
        """The issued invoice with its tenant and brand; 404 for another partner's or another
        tenant's (a tenant-scoped key), 409 for a draft (it has no number, nor a document)."""
        invoice = await invoices_store.get(conn, invoice_id)
        if invoice is None or (partner_id is not None and invoice.partner_id != partner_id) \
                or (tenants is not None and invoice.tenant_id not in tenants):
            raise _not_found(invoice_id)
        if invoice.number is None or invoice.issued_at is None:
            raise Problem(409, f"invoice {invoice_id} is a draft: it has no number and no document yet",
                          code="invoice_not_issued")
        tenant = await tenants_store.get_tenant(conn, invoice.partner_id, invoice.tenant_id)
        if tenant is None:
            raise _not_found(invoice_id)
        billed = Billed(id=tenant.id, name=tenant.name, sip_prefix=tenant.sip_prefix,
                        billing_email=tenant.billing_email, timezone=tenant.timezone)
        brand = await brand_facts(conn, invoice.partner_id)
        return Prepared(invoice, billed, brand, compose.document(invoice, billed, brand))

    async def _prepared(self, invoice_id: str, partner_id: str | None = None,
                        tenants: frozenset[str] | None = None) -> Prepared:
        async with self.pool.acquire() as conn:
            return await self._read(conn, invoice_id, partner_id, tenants)

    async def credit_note_pdf(self, partner_id: str, credit_note_id: str,
                              tenants: frozenset[str] | None) -> tuple[str, bytes]:
        async with self.pool.acquire() as conn:
            note = await collection_store.credit_note(conn, credit_note_id)
            if note is None or note.partner_id != partner_id or (tenants is not None and note.tenant_id not in tenants):
                raise Problem(404, f"no credit note {credit_note_id} for this partner", code="not_found")
            if note.number is None or note.issued_at is None:
                raise Problem(409, f"credit note {credit_note_id} is {note.status.value}: it is numbered once the"
                              " refund went through", code="credit_note_not_issued")
            # The invoice it credits gives the number printed on it and the tenant.
            prepared = await self._read(conn, note.invoice_id, partner_id, tenants)
        document = compose.credit_note_document(note, prepared.document.number, prepared.tenant, prepared.brand)
        return compose.filename(document.number), await asyncio.to_thread(render, document)

    async def pdf(self, partner_id: str, invoice_id: str, tenants: frozenset[str] | None) -> tuple[str, bytes]:
        prepared = await self._prepared(invoice_id, partner_id, tenants)
        return prepared.filename, await asyncio.to_thread(render, prepared.document)

    async def _queue(self, prepared: Prepared, template: str, reference: str) -> bool:
        pdf = await asyncio.to_thread(render, prepared.document)
        attachment = mail_store.Attachment(prepared.filename, "application/pdf", pdf)
        async with self.pool.acquire() as conn, conn.transaction():
            return await mail_store.enqueue(
                conn, partner_id=prepared.invoice.partner_id, to=prepared.tenant.billing_email, template=template,
                values={"invoice": compose.mail_view(prepared.document)}, reference=reference,
                attachments=[attachment])

    async def deliver(self, invoice_id: str) -> bool:
        """Queue the issued invoice's mail with its PDF to the tenant's billing email, once."""
        reference = f"invoice:{invoice_id}"
        async with self.pool.acquire() as conn:
            if await store.queued(conn, reference):
                return False  # mailed before: not even rendered again
            prepared = await self._read(conn, invoice_id, None, None)
        queued = await self._queue(prepared, INVOICE_TEMPLATE, reference)
        log.info("invoice_delivery.mailed", invoice_id=invoice_id, partner_id=prepared.invoice.partner_id,
                 tenant_id=prepared.invoice.tenant_id, number=prepared.document.number, queued=queued)
        return queued

    async def catch_up(self, limit: int = 100) -> int:
        """Mail the recently issued invoices whose mail is not queued: the signal runs after
        commit, so a daemon stopped between the two would otherwise never mail them."""
        async with self.pool.acquire() as conn:
            missing = await store.unmailed(conn, limit)
        mailed = 0
        for invoice_id in missing:
            try:
                mailed += await self.deliver(invoice_id)
            except Exception:  # noqa: BLE001 - one bad invoice must not hold back the others
                log.exception("invoice_delivery.catch_up_failed", invoice_id=invoice_id)
        return mailed

    async def remind(self, partner_id: str, invoice_id: str, tenants: frozenset[str] | None,
                     now: datetime | None = None) -> Reminder:
        """One reminder per invoice and UTC day, of an issued invoice not fully paid (409 otherwise)."""
        prepared = await self._prepared(invoice_id, partner_id, tenants)
        if prepared.invoice.status not in compose.UNPAID:
            raise Problem(409, f"invoice {invoice_id} is {prepared.invoice.status.value}: only an issued, unpaid"
                          " invoice gets a reminder", code="invoice_not_unpaid")
        day: date = (now or datetime.now(UTC)).astimezone(UTC).date()
        reference = f"invoice:{invoice_id}:reminder:{day.isoformat()}"
        queued = await self._queue(prepared, REMINDER_TEMPLATE, reference)
        log.info("invoice_delivery.reminder", invoice_id=invoice_id, partner_id=partner_id, queued=queued)
        return Reminder(invoice_id=invoice_id, to=prepared.tenant.billing_email, day=day, reference=reference,
                        queued=queued)

    async def evidence(self, partner_id: str, invoice_id: str, tenants: frozenset[str] | None,
                       now: datetime | None = None) -> Evidence:
        """The invoice, its PDF and the billable calls of its period (the usage lines' source)."""
        async with self.pool.acquire() as conn:
            prepared = await self._read(conn, invoice_id, partner_id, tenants)
            invoice = prepared.invoice
            calls: list[CallRecord] = []
            found = calls_store.CallFilter(partner_id=partner_id, tenant_id=invoice.tenant_id,
                                           started_from=invoice.period_start, started_before=invoice.period_end)
            async with conn.transaction(readonly=True):  # the cursor lives in a transaction
                async for record in calls_store.iter_records(conn, found):
                    if record.billable_s > 0 and record.call_class in BILLED_CLASSES:
                        calls.append(record)
        pdf = await asyncio.to_thread(render, prepared.document)
        return Evidence(invoice=invoice, tenant=prepared.tenant, issuer=prepared.document.issuer.brand_name,
                        pdf_name=prepared.filename, pdf=pdf, calls=calls,
                        generated_at=(now or datetime.now(UTC)).replace(microsecond=0))
