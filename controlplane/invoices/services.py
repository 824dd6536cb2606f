"""Decides the invoice and tax routes: ownership, validation beyond the body's shape, issuing
(number + SENT + invoice.created in one transaction, ``signals.invoice_issued`` after commit)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import structlog

from controlplane.db.connection import Executor
from controlplane.invoices import calc, status, store, tax_store, terms, usage_store
from controlplane.invoices.compose import off_cycle
from controlplane.invoices.jobs import JobReport, run_invoices
from controlplane.invoices.models import Invoice, InvoiceStatus, LineKind, OneTimeCharge, Tax
from controlplane.invoices.views import (InvoiceView, JurisdictionBody, JurisdictionView, NumberingView,
                                         OffCycleBody, PendingChargeBody, PendingItemView, StatsView,
                                         TaxAssignmentView)
from controlplane.shared.money import currency
from controlplane.shared.pagination import Sort, encode_cursor
from controlplane.shared.problems import FieldError, Problem
from controlplane.signals import InvoiceIssued

log = structlog.get_logger(__name__)
SendIssued = Callable[[InvoiceIssued], Awaitable[None]]
Clock = Callable[[], datetime]


def _item_view(item: usage_store.PendingRow) -> PendingItemView:
    # the stored reference carries its origin ("charge:", "credit_note:", "carry:"): shown whole
    return PendingItemView(id=item.id, tenant_id=item.tenant_id, kind=item.kind.value, description=item.description,
                           amount_micros=item.amount_micros, reference=item.reference, created_at=item.created_at)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class InvoiceServices:
    def __init__(self, pool: asyncpg.Pool, send_issued: SendIssued, clock: Clock = _utcnow) -> None:
        self.pool = pool
        self.send_issued = send_issued
        self.clock = clock

    async def announce(self, invoice: Invoice) -> None:
        await self.send_issued(InvoiceIssued(invoice.partner_id, invoice.tenant_id, invoice.id,
                                             invoice.total_micros))

    async def announce_cycle(self, made: store.IssuedDraft) -> None:
        i = made.draft
        await self.send_issued(InvoiceIssued(i.partner_id, i.tenant_id, i.id, i.total_micros))

    async def run_job(self, now: datetime | None = None) -> JobReport:
        return await run_invoices(self.pool, now or self.clock(), lookup=terms.last_cycles,
                                  issued=self.announce_cycle)

    # ------------------------------------------------------------ invoices

    async def page(self, partner_id: str, f: store.Filters, limit: int,
                   after: tuple[datetime, str] | None) -> tuple[list[InvoiceView], str | None]:
        rows = await store.list_page(self.pool, partner_id, f, limit=limit + 1, after=after)
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = None
        if more and rows[-1].created_at is not None:
            cursor = encode_cursor(rows[-1].created_at, rows[-1].id, Sort.CREATED_DESC)
        return [InvoiceView.of(i) for i in rows], cursor

    async def stats(self, partner_id: str, f: store.Filters) -> StatsView:
        return StatsView.of(await store.stats(self.pool, partner_id, f))

    async def get(self, partner_id: str, invoice_id: str) -> InvoiceView:
        return InvoiceView.of(await self._mine(self.pool, partner_id, invoice_id))

    async def _mine(self, conn: Executor, partner_id: str, invoice_id: str) -> Invoice:
        invoice = await store.get(conn, invoice_id)
        if invoice is None or invoice.partner_id != partner_id:
            raise Problem(404, f"no invoice {invoice_id}", code="not_found")
        return invoice

    async def _tenant(self, conn: Executor, partner_id: str, tenant_id: str,
                      field: str | None = None) -> str:
        found = await tax_store.tenant_partner(conn, tenant_id)
        if found is None or found[0] != partner_id:
            if field is not None:
                raise Problem(422, f"{field}: no tenant {tenant_id}", field=field)
            raise Problem(404, f"no tenant {tenant_id}", code="not_found")
        return found[1]

    async def create_off_cycle(self, partner_id: str, body: OffCycleBody) -> InvoiceView:
        """A DRAFT with the given one-time lines and the tenant's tax (issued at once if asked)."""
        now = self.clock()
        async with self.pool.acquire() as conn:
            tenant_status = await self._tenant(conn, partner_id, body.tenant_id, "tenant_id")
            if tenant_status == "CANCELLED":
                raise Problem(409, "the tenant is cancelled: no more invoices", code="tenant_cancelled")
            taxes = await usage_store.taxes(conn, [body.tenant_id])
            tax: Tax | None = taxes.get(body.tenant_id)
            net = await terms.net_terms_days(conn, body.tenant_id, now)
            computed = off_cycle([OneTimeCharge(LineKind(line.kind), line.description, line.amount_micros)
                                  for line in body.lines], tax)
            draft = store.NewInvoice(store.new_id(), partner_id, body.tenant_id, now, now, currency(),
                                     computed.subtotal_micros, computed.tax_micros, computed.total_micros,
                                     computed.lines, None if tax is None else tax.name,
                                     None if tax is None else tax.code, None if tax is None else tax.rate_percent,
                                     net, off_cycle=True)
            async with conn.transaction():
                await store.insert_drafts(conn, [draft])
                issued = await store.issue(conn, [draft.id], now) if body.issue else []
            invoice = issued[0] if issued else await store.get(conn, draft.id)
        assert invoice is not None
        if issued:
            await self.announce(invoice)
        log.info("invoices.off_cycle", invoice_id=draft.id, tenant_id=body.tenant_id, issued=bool(issued))
        return InvoiceView.of(invoice)

    async def add_charge(self, partner_id: str, tenant_id: str, body: PendingChargeBody) -> tuple[PendingItemView, bool]:
        """A one-time charge (setup, porting, custom) waiting for the tenant's next invoice, as its
        own line (docs/invoices.md); True when this call created it. A ``reference`` already used
        by the partner gives back that charge when it is the same one, else 409."""
        reference = f"charge:{body.reference or secrets.token_hex(12)}"
        async with self.pool.acquire() as conn, conn.transaction():
            if await self._tenant(conn, partner_id, tenant_id) == "CANCELLED":
                raise Problem(409, "the tenant is cancelled: no more invoices", code="tenant_cancelled")
            created = await store.add_item(conn, partner_id, tenant_id, LineKind(body.kind), body.description,
                                           body.amount_micros, reference)
            item = await usage_store.item_by_reference(conn, partner_id, reference)
        assert item is not None
        if not created and (item.tenant_id, item.kind.value, item.description, item.amount_micros) != (
                tenant_id, body.kind, body.description, body.amount_micros):
            raise Problem(409, "reference already names another charge", code="conflict", field="reference")
        if created:
            log.info("invoices.charge_added", tenant_id=tenant_id, kind=body.kind, amount_micros=body.amount_micros)
        return _item_view(item), created

    async def pending(self, partner_id: str, tenant_id: str) -> list[PendingItemView]:
        await self._tenant(self.pool, partner_id, tenant_id)
        return [_item_view(i) for i in await usage_store.pending_of(self.pool, tenant_id)]

    async def issue(self, partner_id: str, invoice_id: str) -> InvoiceView:
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                current = await self._mine(conn, partner_id, invoice_id)
                if current.status is not InvoiceStatus.DRAFT:
                    raise Problem(409, f"the invoice is {current.status}, not DRAFT", code="invalid_status")
                invoice = (await store.issue(conn, [invoice_id], self.clock()))[0]
        await self.announce(invoice)
        return InvoiceView.of(invoice)

    async def void(self, partner_id: str, invoice_id: str) -> InvoiceView:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._mine(conn, partner_id, invoice_id)
            try:
                invoice = await store.set_status(conn, invoice_id, InvoiceStatus.VOID)
            except status.TransitionRefused as exc:
                raise Problem(409, f"{exc}: only a DRAFT can be voided", code="invalid_status") from None
            # what the draft consumed waits for the next invoice again
            await conn.execute("UPDATE tenant_invoice_items SET invoice_id = NULL WHERE invoice_id = $1", invoice_id)
        return InvoiceView.of(invoice)

    async def numbering(self, partner_id: str) -> NumberingView:
        prefix, nxt = await store.numbering(self.pool, partner_id)
        return NumberingView(prefix=prefix, next_number=nxt)

    async def set_prefix(self, partner_id: str, prefix: str) -> NumberingView:
        got, nxt = await store.set_prefix(self.pool, partner_id, prefix)
        return NumberingView(prefix=got, next_number=nxt)

    # ------------------------------------------------------------ taxes

    async def jurisdictions(self, partner_id: str) -> list[JurisdictionView]:
        return [JurisdictionView.of(j) for j in await tax_store.list_all(self.pool, partner_id)]

    async def jurisdiction(self, partner_id: str, jurisdiction_id: str) -> JurisdictionView:
        found = await tax_store.get(self.pool, partner_id, jurisdiction_id)
        if found is None:
            raise Problem(404, f"no tax jurisdiction {jurisdiction_id}", code="not_found")
        return JurisdictionView.of(found)

    @staticmethod
    def _rate(body: JurisdictionBody) -> str:
        try:
            calc.parse_rate_percent(body.rate)
        except ValueError as exc:
            raise Problem(422, f"rate: {exc}", errors=[FieldError("rate", f"rate: {exc}")]) from None
        return body.rate

    async def create_jurisdiction(self, partner_id: str, body: JurisdictionBody) -> JurisdictionView:
        rate = self._rate(body)
        try:
            made = await tax_store.create(self.pool, partner_id, body.name, body.code, rate, body.enabled)
        except tax_store.CodeTaken:
            raise Problem(409, f"a jurisdiction with code {body.code} exists", code="conflict", field="code") from None
        return JurisdictionView.of(made)

    async def update_jurisdiction(self, partner_id: str, jurisdiction_id: str,
                                  body: JurisdictionBody) -> JurisdictionView:
        """New values apply to invoices computed from now on; issued ones keep the copy they took."""
        rate = self._rate(body)
        try:
            done = await tax_store.update(self.pool, partner_id, jurisdiction_id, body.name, body.code, rate,
                                          body.enabled)
        except tax_store.CodeTaken:
            raise Problem(409, f"a jurisdiction with code {body.code} exists", code="conflict", field="code") from None
        if done is None:
            raise Problem(404, f"no tax jurisdiction {jurisdiction_id}", code="not_found")
        return JurisdictionView.of(done)

    async def delete_jurisdiction(self, partner_id: str, jurisdiction_id: str) -> None:
        if not await tax_store.delete(self.pool, partner_id, jurisdiction_id):
            raise Problem(404, f"no tax jurisdiction {jurisdiction_id}", code="not_found")

    async def tenant_tax(self, partner_id: str, tenant_id: str) -> TaxAssignmentView:
        await self._tenant(self.pool, partner_id, tenant_id)
        found = await tax_store.tenant_of(self.pool, tenant_id)
        return TaxAssignmentView(tenant_id=tenant_id, jurisdiction=None if found is None else JurisdictionView.of(found))

    async def put_tenant_tax(self, partner_id: str, tenant_id: str, jurisdiction_id: str | None) -> TaxAssignmentView:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            if jurisdiction_id is not None and await tax_store.get(conn, partner_id, jurisdiction_id) is None:
                raise Problem(422, f"jurisdiction_id: no tax jurisdiction {jurisdiction_id}",
                              field="jurisdiction_id")
            await tax_store.assign(conn, tenant_id, jurisdiction_id)
        return await self.tenant_tax(partner_id, tenant_id)
