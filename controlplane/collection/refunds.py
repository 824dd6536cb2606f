"""Refunds of a tenant invoice as numbered credit notes (docs/collection.md).

1. Under the invoice's lock the refund is spread over its payments (``rules.allocate_refund``:
   never past what was paid less what earlier credit notes, pending ones included, took) and
   written PENDING, committed.
2. Each card payment's part is refunded at the provider (idempotency key per credit note and
   payment); a manual payment's part is the partner's to return.
3. In one transaction: the credit note gets its number (gapless per partner), the invoice its
   ``apply_refund`` and the tenant's next invoice the refunded usage (``add_credit``).

A refund the provider refuses is FAILED and takes no number; one whose provider call did not
answer stays PENDING and is finished by asking again with the same ``reference``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

import asyncpg
import structlog

from controlplane.collection import store
from controlplane.collection.models import CreditNoteRecord, CreditNoteStatus, CreditNoteView, RefundRequest
from controlplane.collection.providers import Resolver
from controlplane.collection.rules import (
    REFERENCE,
    RefundTooLarge,
    StripeMode,
    allocate_refund,
    fee_micros,
    usage_credit_micros,
)
from controlplane.events.emit import emit
from controlplane.invoices import store as invoices
from controlplane.shared import money
from controlplane.shared.ids import new_id
from controlplane.shared.payments import PaymentDeclined
from controlplane.shared.problems import FieldError, Problem

log = structlog.get_logger(__name__)


def check_refund(body: RefundRequest) -> None:
    errors: list[FieldError] = []
    if body.amount_micros <= 0 or body.amount_micros % money.MICROS_PER_CENT:
        errors.append(FieldError("amount_micros", "amount_micros: a positive whole number of cents in micros"))
    if body.reference is not None and not REFERENCE.fullmatch(body.reference):
        errors.append(FieldError("reference", "reference: 1 to 200 printable characters"))
    if body.reason is not None and len(body.reason) > 500:
        errors.append(FieldError("reason", "reason: at most 500 characters"))
    if errors:
        raise Problem(422, errors[0].message, errors=errors)


@dataclass(frozen=True)
class Refunds:
    pool: asyncpg.Pool
    resolver: Resolver

    async def refund(self, partner_id: str, invoice_id: str, body: RefundRequest) -> tuple[CreditNoteView, bool]:
        """The credit note (and whether this call created it)."""
        check_refund(body)
        invoice = await invoices.get(self.pool, invoice_id)
        if invoice is None or invoice.partner_id != partner_id:
            raise Problem(404, f"no invoice {invoice_id} for this partner", code="not_found")
        reference = f"refund:{body.reference or new_id('ref')}"
        created = False
        async with self.pool.acquire() as conn, conn.transaction():
            await store.lock_invoice(conn, invoice_id)
            note = await store.credit_note_by_reference(conn, partner_id, reference)
            if note is None:
                try:
                    parts = allocate_refund(body.amount_micros, await store.refundables(conn, invoice_id))
                except RefundTooLarge as exc:
                    raise Problem(409, f"amount_micros: {exc}", code="refund_exceeds_paid", field="amount_micros",
                                  extra={"refundable_micros": exc.refundable}) from None
                modes = {p.payment_id: p.mode for p in await store.payments(conn, invoice_id)}
                note = CreditNoteRecord(
                    credit_note_id=new_id("cn"), partner_id=partner_id, tenant_id=invoice.tenant_id,
                    invoice_id=invoice_id, reference=reference, status=CreditNoteStatus.PENDING, number=None,
                    amount_micros=body.amount_micros,
                    usage_credit_micros=usage_credit_micros(
                        body.amount_micros, invoice.total_micros,
                        [(line.kind, line.amount_micros) for line in invoice.lines]) if body.credit_usage else 0,
                    currency=invoice.currency, reason=body.reason, failure=None, created_at=datetime.now(UTC),
                    issued_at=None)
                await store.insert_credit_note(conn, note)
                for part in parts:
                    mode = modes.get(part.payment_id)
                    fee = fee_micros(StripeMode(mode), part.amount_micros) if part.source == "card" and mode else 0
                    await store.insert_allocation(conn, note.credit_note_id, part.payment_id, part.amount_micros, fee)
                created = True
            elif note.amount_micros != body.amount_micros or note.invoice_id != invoice_id:
                raise Problem(409, "reference already names another refund", code="conflict", field="reference")
        if note.status is CreditNoteStatus.FAILED:
            raise Problem(402, f"the refund was refused: {note.failure}", code="refund_failed")
        if note.status is CreditNoteStatus.PENDING:
            await self._refund_at_provider(note)
            await self._issue(note)
        done = await store.credit_note(self.pool, note.credit_note_id)
        assert done is not None
        return CreditNoteView.of(done), created

    async def _refund_at_provider(self, note: CreditNoteRecord) -> None:
        parts = await store.allocations(self.pool, note.credit_note_id)
        card_parts = [p for p in parts if p[3] is not None]
        if not card_parts or all(p[2] is not None for p in card_parts):
            return
        partner = await self.resolver.for_partner(self.pool, note.partner_id)  # PaymentsDisabled: a 409
        refunded_any = any(p[2] is not None for p in card_parts)
        for payment_id, amount, refund_id, provider_charge_id, account in card_parts:
            if refund_id is not None:
                continue
            assert provider_charge_id is not None
            if account != partner.account:  # the charge was made on an account the partner left
                await self._fail(note, "stripe_mode_changed: the payment was taken on another Stripe account",
                                 refunded_any)
            try:
                result = await partner.provider.refund(
                    provider_charge_id=provider_charge_id, amount_micros=amount,
                    idempotency_key=f"collection:{note.partner_id}:{note.credit_note_id}:{payment_id}")
            except PaymentDeclined as exc:
                await self._fail(note, f"{exc.code}: {exc.message}", refunded_any)
            await store.set_refund_id(self.pool, note.credit_note_id, payment_id, result.provider_refund_id)
            refunded_any = True

    async def _fail(self, note: CreditNoteRecord, failure: str, refunded_any: bool) -> NoReturn:
        """A refused refund: FAILED (no number) when nothing was refunded yet; otherwise it
        stays PENDING for a person (the provider refunded part of it)."""
        if not refunded_any:
            await store.fail_credit_note(self.pool, note.credit_note_id, failure)
        log.warning("collection.refund_refused", credit_note_id=note.credit_note_id, failure=failure)
        raise Problem(402, f"the payment provider refused the refund: {failure}", code="refund_failed")

    async def _issue(self, note: CreditNoteRecord) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await store.lock_invoice(conn, note.invoice_id)
            fresh = await store.credit_note(conn, note.credit_note_id)
            if fresh is None or fresh.status is not CreditNoteStatus.PENDING:
                return
            number = await store.issue_credit_note(conn, note.credit_note_id, note.partner_id)
            await invoices.apply_refund(conn, note.invoice_id, note.amount_micros, f"credit_note:{note.credit_note_id}")
            if note.usage_credit_micros > 0:
                await invoices.add_credit(conn, note.partner_id, note.tenant_id, note.usage_credit_micros,
                                          f"credit_note:{note.credit_note_id}",
                                          f"Refunded usage (credit note {number})")
            # Once: only a PENDING note is numbered, under the invoice's lock, in this transaction.
            await emit(conn, "credit_note.issued", partner_id=note.partner_id, tenant_id=note.tenant_id, data={
                "credit_note_id": note.credit_note_id, "number": number, "invoice_id": note.invoice_id,
                "tenant_id": note.tenant_id, "amount_micros": note.amount_micros,
                "usage_credit_micros": note.usage_credit_micros, "currency": note.currency, "reason": note.reason})
        log.info("collection.credit_note_issued", credit_note_id=note.credit_note_id, number=number,
                 amount_micros=note.amount_micros, usage_credit_micros=note.usage_credit_micros)

    async def resume_stale(self, older_than: datetime) -> int:
        """Finish refunds left PENDING (Stripe did not answer, or the process died); how many."""
        notes = await store.pending_credit_notes(self.pool, older_than)
        for note in notes:
            try:
                await self._refund_at_provider(note)
                await self._issue(note)
            except Exception:  # refused (now FAILED) or still unreachable: the next pass or a person
                log.warning("collection.refund_resume_failed", credit_note_id=note.credit_note_id, exc_info=True)
        return len(notes)

    async def list(self, partner_id: str, invoice_id: str) -> list[CreditNoteView]:
        invoice = await invoices.get(self.pool, invoice_id)
        if invoice is None or invoice.partner_id != partner_id:
            raise Problem(404, f"no invoice {invoice_id} for this partner", code="not_found")
        return [CreditNoteView.of(n) for n in await store.credit_notes(self.pool, invoice_id)]
