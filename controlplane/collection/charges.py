"""Charging a tenant's default card for an invoice, once per attempt (docs/collection.md).

    outcome = await collect(pool, resolver, signals, invoice_id=inv, attempt=n)

THE way an invoice is charged: on ``signals.invoice_issued`` (attempt 1) and by dunning's
retries (attempt 2, 3, ...). Not a services module, so the dunning capability may import it.

1. Whatever an earlier attempt of the invoice left open is finished first: a PENDING charge
   (the process died before or during the provider call) is completed with its own
   idempotency key, a SUCCEEDED one not yet applied to the invoice is applied. So a retry
   after a crash never charges the card a second time for the same money.
2. The amount is what the invoice still owes (total - paid), now.
3. The charge's row (reference ``invoice:<id>:<attempt>``) is committed PENDING before the
   provider hears of it; under the row's lock the provider is called with the key
   ``collection:<partner>:<reference>``; the row becomes SUCCEEDED or DECLINED.
4. SUCCEEDED: ``invoices.store.apply_payment`` (idempotent by the reference), the payment
   row, and on full payment the event ``invoice.paid`` in one transaction; after commit
   ``signals.invoice_paid``. DECLINED: ``invoice.failed`` and ``payment.failed``
   (``"payer": "tenant"``) in the transaction that marks it.

An attempt that was DECLINED answers its stored decline again without calling Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from controlplane.collection import store
from controlplane.collection.models import ChargeStatus, PaymentRecord, TenantCharge
from controlplane.collection.providers import PartnerProvider, Resolver
from controlplane.collection.rules import charge_reference, fee_micros
from controlplane.db.connection import Connection
from controlplane.events.emit import emit
from controlplane.invoices import store as invoices
from controlplane.invoices.models import Invoice, InvoiceStatus
from controlplane.invoices.status import TransitionRefused
from controlplane.shared import money
from controlplane.shared.ids import new_id
from controlplane.shared.payments import PaymentDeclined, PaymentsDisabled, PaymentUnavailable
from controlplane.signals import InvoicePaid, Signals

log = structlog.get_logger(__name__)

# How far back the sweeper looks for an issued invoice whose charge was never started.
MISSED_WINDOW = timedelta(days=1)
CHARGEABLE = frozenset({InvoiceStatus.SENT, InvoiceStatus.OVERDUE, InvoiceStatus.PARTIALLY_PAID})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one collect() did.

    ``status``: paid | partially_paid (the charge succeeded) | nothing_due (nothing owed, or
    the invoice is not SENT/OVERDUE/PARTIALLY_PAID) | declined | no_payment_method (both
    emitted invoice.failed + payment.failed) | unavailable (provider unreachable: the charge
    stays PENDING and is finished by the next collect() or the sweeper) | disabled (no
    provider for the partner's mode) | not_found.
    """

    status: str
    invoice_id: str
    amount_micros: int = 0
    code: str | None = None
    message: str | None = None
    charge_id: str | None = None


def idempotency_key(partner_id: str, reference: str) -> str:
    return f"collection:{partner_id}:{reference}"


def description(invoice_id: str) -> str:
    """What the PaymentIntent says (the same on a retry: Stripe's key replays only the same request)."""
    return f"Invoice {invoice_id}"


async def collect(pool: asyncpg.Pool, resolver: Resolver, signals: Signals, *, invoice_id: str,
                  attempt: int, report_no_card: bool = True) -> Outcome:
    """Charge the invoice's tenant's default card what the invoice still owes (see the module).

    ``report_no_card`` False: no card is not reported (the sweeper's look at a missed charge
    must not announce the same failure every minute)."""
    if attempt < 1:
        raise ValueError("attempts count from 1")
    unfinished = await finish_open(pool, resolver, signals, invoice_id)
    if unfinished:
        # An earlier attempt's outcome is still unknown: charging again could take the money twice.
        return Outcome("unavailable", invoice_id, unfinished[0].amount_micros, code="charge_pending",
                       message="an earlier charge of this invoice is still pending at the provider",
                       charge_id=unfinished[0].charge_id)
    async with pool.acquire() as conn:
        invoice = await invoices.get(conn, invoice_id)
        if invoice is None:
            return Outcome("not_found", invoice_id)
        reference = charge_reference(invoice_id, attempt)
        existing = await store.charge(conn, invoice.partner_id, reference)
        if existing is not None:
            return _of_charge(existing, invoice)
        due = money.round_cents(invoice.outstanding_micros)
        if invoice.status not in CHARGEABLE or due <= 0:
            return Outcome("nothing_due", invoice_id)
        try:
            partner = await resolver.for_partner(conn, invoice.partner_id)
        except PaymentsDisabled as exc:
            log.warning("collection.disabled", partner_id=invoice.partner_id, invoice_id=invoice_id)
            return Outcome("disabled", invoice_id, due, code=exc.code, message=exc.detail)
        customer = await store.customer_id(conn, invoice.tenant_id, partner.account)
        card = await store.default_method(conn, invoice.tenant_id, partner.account)
        if customer is None or card is None:
            if not report_no_card:
                return Outcome("no_payment_method", invoice_id, due, code="no_payment_method")
            async with conn.transaction():
                await _emit_failed(conn, invoice, reference, attempt, due, "no_payment_method",
                                   "the tenant has no saved card to charge")
            return Outcome("no_payment_method", invoice_id, due, code="no_payment_method")
        row = TenantCharge(
            charge_id=new_id("tch"), partner_id=invoice.partner_id, tenant_id=invoice.tenant_id, invoice_id=invoice_id,
            attempt=attempt, reference=reference, mode=partner.mode, account=partner.account, amount_micros=due,
            application_fee_micros=fee_micros(partner.mode, due), currency=invoice.currency,
            status=ChargeStatus.PENDING, customer_id=customer, method_id=card.id, provider_charge_id=None,
            decline_code=None, decline_message=None, recorded=False)
        async with conn.transaction():
            await store.insert_charge(conn, row)  # a concurrent caller's row wins: it is completed below
    return await _finish(pool, resolver, signals, invoice.partner_id, reference)


async def finish_open(pool: asyncpg.Pool, resolver: Resolver, signals: Signals, invoice_id: str
                      ) -> list[TenantCharge]:
    """Complete the invoice's PENDING charges and apply its SUCCEEDED unrecorded ones; the
    charges still PENDING afterwards (the provider did not answer)."""
    async with pool.acquire() as conn:
        rows = await store.open_charges(conn, invoice_id)
    for row in rows:
        await _finish(pool, resolver, signals, row.partner_id, row.reference)
    async with pool.acquire() as conn:
        return [r for r in await store.open_charges(conn, invoice_id) if r.status is ChargeStatus.PENDING]


async def sweep(pool: asyncpg.Pool, resolver: Resolver, signals: Signals, older_than: datetime) -> int:
    """What a crash left undone (the plugin runs it every minute); how many it saw:

    - charges left PENDING, or SUCCEEDED and not applied, untouched since ``older_than``;
    - invoices issued in the day before ``older_than`` that no charge was started for while
      their tenant has a card (the process died between the invoice's commit and the
      after-commit ``invoice_issued``): attempt 1 is made now.
    """
    async with pool.acquire() as conn:
        rows = await store.stale_charges(conn, older_than)
        missed = await store.uncharged_invoices(conn, older_than - MISSED_WINDOW, older_than)
    for row in rows:
        try:
            await _finish(pool, resolver, signals, row.partner_id, row.reference)
        except Exception:  # one partner's broken account must not stop the others
            log.exception("collection.sweep_failed", charge_id=row.charge_id)
    for invoice_id in missed:
        try:
            outcome = await collect(pool, resolver, signals, invoice_id=invoice_id, attempt=1,
                                    report_no_card=False)
            log.info("collection.missed_charge", invoice_id=invoice_id, status=outcome.status)
        except Exception:
            log.exception("collection.sweep_failed", invoice_id=invoice_id)
    return len(rows) + len(missed)


async def _finish(pool: asyncpg.Pool, resolver: Resolver, signals: Signals, partner_id: str,
                  reference: str) -> Outcome:
    async with pool.acquire() as conn:
        row = await store.charge(conn, partner_id, reference)
        assert row is not None
        if row.status is ChargeStatus.PENDING:
            try:
                partner = await resolver.for_partner(conn, partner_id)
            except PaymentsDisabled as exc:
                return Outcome("disabled", row.invoice_id, row.amount_micros, code=exc.code, message=exc.detail)
            if partner.account != row.account:
                # The partner switched accounts with this charge in flight: its outcome is only
                # known at the old account. Left PENDING (and logged) for a person to look at.
                log.error("collection.pending_on_old_account", charge_id=row.charge_id, account=row.account)
                return Outcome("unavailable", row.invoice_id, row.amount_micros, code="stripe_mode_changed")
            try:
                row = await _call_provider(conn, partner, partner_id, reference)
            except PaymentUnavailable as exc:
                return Outcome("unavailable", row.invoice_id, row.amount_micros, code=exc.code, message=exc.detail)
        if row.status is ChargeStatus.DECLINED:
            return Outcome("declined", row.invoice_id, row.amount_micros, code=row.decline_code,
                           message=row.decline_message, charge_id=row.charge_id)
        paid = await _record(conn, row)
    if paid is not None:
        await signals.invoice_paid.send(paid)
    async with pool.acquire() as conn:
        invoice = await invoices.get(conn, row.invoice_id)
    return _of_charge(row, invoice)


async def _call_provider(conn: Connection, partner: PartnerProvider, partner_id: str,
                         reference: str) -> TenantCharge:
    """Under the row's lock: the provider call; the row becomes SUCCEEDED or DECLINED (with
    the failure events in the same transaction)."""
    async with conn.transaction():
        row = await store.charge(conn, partner_id, reference, lock=True)
        assert row is not None
        if row.status is not ChargeStatus.PENDING:
            return row
        try:
            result = await partner.provider.charge(
                customer_id=row.customer_id, method_id=row.method_id, amount_micros=row.amount_micros,
                currency=row.currency, description=description(row.invoice_id),
                idempotency_key=idempotency_key(partner_id, reference))
        except PaymentDeclined as exc:
            await store.mark_declined(conn, row.charge_id, exc.code, exc.message)
            invoice = await invoices.get(conn, row.invoice_id)
            if invoice is not None:
                await _emit_failed(conn, invoice, reference, row.attempt, row.amount_micros, exc.code, exc.message)
            log.info("collection.charge_declined", partner_id=partner_id, reference=reference, code=exc.code)
        else:
            await store.mark_succeeded(conn, row.charge_id, result.provider_charge_id)
            log.info("collection.charge_succeeded", partner_id=partner_id, reference=reference,
                     amount_micros=row.amount_micros, mode=row.mode.value)
    done = await store.charge(conn, partner_id, reference)
    assert done is not None
    return done


async def _record(conn: Connection, row: TenantCharge) -> InvoicePaid | None:
    """Apply a SUCCEEDED charge to its invoice once; the InvoicePaid to send when it paid it in full."""
    async with conn.transaction():
        await store.lock_invoice(conn, row.invoice_id)
        fresh = await store.charge(conn, row.partner_id, row.reference, lock=True)
        if fresh is None or fresh.recorded:
            return None
        payment = PaymentRecord(
            payment_id=new_id("pay"), partner_id=row.partner_id, tenant_id=row.tenant_id, invoice_id=row.invoice_id,
            reference=row.reference, source="card", mode=row.mode.value, charge_id=row.charge_id,
            amount_micros=row.amount_micros, fee_micros=row.application_fee_micros, currency=row.currency,
            note=None, created_at=datetime.now(UTC))
        try:
            paid = await apply(conn, payment)
        except TransitionRefused as exc:
            # Paid by hand, voided or cancelled while the card was being charged: the money was
            # taken but the invoice cannot take it. Marked so the sweeper stops; a person refunds
            # it at Stripe (logged as an error to be seen).
            log.error("collection.payment_unapplied", charge_id=row.charge_id, invoice_id=row.invoice_id,
                      amount_micros=row.amount_micros, error=str(exc))
            paid = None
        await store.mark_recorded(conn, row.charge_id)
    return paid


async def apply(conn: Connection, payment: PaymentRecord) -> InvoicePaid | None:
    """Inside the caller's transaction (invoice locked): the payment applied to the invoice
    (idempotent by its reference), its row, and ``invoice.paid`` when it is now paid in full."""
    before = await invoices.get(conn, payment.invoice_id)
    invoice = await invoices.apply_payment(conn, payment.invoice_id, payment.amount_micros, payment.reference)
    await store.insert_payment(conn, payment)
    if invoice.status is not InvoiceStatus.PAID or (before is not None and before.status is InvoiceStatus.PAID):
        return None
    await emit(conn, "invoice.paid", partner_id=invoice.partner_id, tenant_id=invoice.tenant_id, data={
        "invoice_id": invoice.id, "number": invoice.number, "total_micros": invoice.total_micros,
        "paid_micros": invoice.paid_micros, "currency": invoice.currency, "payment_reference": payment.reference,
        "source": payment.source})
    log.info("collection.invoice_paid", invoice_id=invoice.id, partner_id=invoice.partner_id)
    return InvoicePaid(invoice.partner_id, invoice.tenant_id, invoice.id)


async def _emit_failed(conn: Connection, invoice: Invoice, reference: str, attempt: int, amount_micros: int,
                       code: str, message: str) -> None:
    """``invoice.failed`` and the tenant-side ``payment.failed``, inside the caller's transaction."""
    await emit(conn, "invoice.failed", partner_id=invoice.partner_id, tenant_id=invoice.tenant_id, data={
        "invoice_id": invoice.id, "number": invoice.number, "attempt": attempt, "amount_micros": amount_micros,
        "currency": invoice.currency, "code": code, "message": message})
    await emit(conn, "payment.failed", partner_id=invoice.partner_id, tenant_id=invoice.tenant_id, data={
        "payer": "tenant", "tenant_id": invoice.tenant_id, "invoice_id": invoice.id, "reference": reference,
        "amount_micros": amount_micros, "currency": invoice.currency, "code": code, "message": message})


def _of_charge(row: TenantCharge, invoice: Invoice | None) -> Outcome:
    if row.status is ChargeStatus.DECLINED:
        return Outcome("declined", row.invoice_id, row.amount_micros, code=row.decline_code,
                       message=row.decline_message, charge_id=row.charge_id)
    if row.status is ChargeStatus.PENDING:
        return Outcome("unavailable", row.invoice_id, row.amount_micros, charge_id=row.charge_id)
    status = "paid" if invoice is not None and invoice.status is InvoiceStatus.PAID else "partially_paid"
    return Outcome(status, row.invoice_id, row.amount_micros, charge_id=row.charge_id)
