"""Card charges the partner owes the platform (activation, a month's fee, an upgrade), each paid once.

A due is recorded before its card is charged; the charge goes through
``controlplane.payments.charges.charge_partner`` with the due's reference, which is idempotent by
(partner, reference): a due whose attempt was cut short (kill -9 between the charge and its
record) is charged again with the same reference and the payment that went through is found,
never made twice. The invoice is written with the due's reference too, so it exists once.
A declined attempt emits ``payment.failed``. Callers decide when to try again (a person asks again;
the cycle job once a day), so every call here is a real attempt (``retry_declined``: payments
restarts a declined reference with a new idempotency key).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from cdr_ingest.tiers import Tier
from controlplane.account import store
from controlplane.account.store import Conn, Due, InvoiceRow
from controlplane.events import emit
from controlplane.payments.charges import charge_partner
from controlplane.payments.provider import (NoPaymentMethod, PaymentDeclined, PaymentProvider,
                                            PaymentsDisabled, PaymentUnavailable)
from controlplane.shared import money
from controlplane.shared.ids import new_id

log = structlog.get_logger(__name__)
# Runs inside the transaction that records the payment (activate the partner, change its tier...).
OnPaid = Callable[[Conn, InvoiceRow], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Paid:
    invoice: InvoiceRow


@dataclass(frozen=True, slots=True)
class Unpaid:
    code: str
    message: str
    error: Exception


def line(description: str, amount: int) -> dict[str, Any]:
    return {"description": description, "amount_micros": amount}


async def record_due(pool: asyncpg.Pool, partner_id: str, reference: str, purpose: str, cycle: str,
                     lines: Sequence[dict[str, Any]], description: str) -> Due:
    amount = sum(int(x["amount_micros"]) for x in lines)
    async with pool.acquire() as conn:
        return await store.add_due(conn, partner_id, reference, purpose, cycle, amount, description, lines)


async def settle(pool: asyncpg.Pool, provider: PaymentProvider | None, due: Due, *, tier: Tier, now: datetime,
                 on_paid: OnPaid | None = None) -> Paid | Unpaid:
    """Charge the due (or find it paid) and write its invoice; an Unpaid says why not."""
    if due.status == "PAID":
        async with pool.acquire() as conn:
            invoice = await store.invoice_by_reference(conn, due.partner_id, due.reference)
        if invoice is not None:
            return Paid(invoice)
    async with pool.acquire() as conn:
        await store.open_attempt(conn, due.partner_id, due.reference, due.reference, now)
    try:
        charge = await charge_partner(pool, provider, partner_id=due.partner_id, amount_micros=due.amount_micros,
                                      reference=due.reference, description=due.description,
                                      retry_declined=True)
    except (PaymentDeclined, NoPaymentMethod) as exc:
        code = exc.code or "payment_failed"
        async with pool.acquire() as conn, conn.transaction():
            await store.close_attempt(conn, due.partner_id, due.reference, paid=False, error=f"{code}: {exc.detail}")
            await emit(conn, "payment.failed", partner_id=due.partner_id, data={
                "payer": "partner", "reference": due.reference, "amount_micros": due.amount_micros,
                "currency": money.currency(),
                "code": code, "message": exc.detail, "purpose": due.purpose})
        log.warning("account.charge_failed", partner_id=due.partner_id, reference=due.reference, code=code)
        return Unpaid(code, exc.detail, exc)
    except (PaymentsDisabled, PaymentUnavailable) as exc:
        # Not the partner's doing: the attempt stays open and the next run retries the same reference.
        log.warning("account.charge_unavailable", partner_id=due.partner_id, reference=due.reference,
                    code=exc.code)
        return Unpaid(exc.code or "payment_unavailable", exc.detail, exc)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM partners WHERE id = $1 FOR UPDATE", due.partner_id)
        existing = await store.invoice_by_reference(conn, due.partner_id, due.reference)
        invoice = existing or await store.insert_invoice(
            conn, invoice_id=new_id("inv"), partner_id=due.partner_id, reference=due.reference,
            purpose=due.purpose, cycle=due.cycle, tier=tier, amount=due.amount_micros, currency=money.currency(),
            lines=due.lines, charge_reference=charge.reference, provider_charge_id=charge.provider_charge_id,
            year=now.year)
        if existing is None:
            await store.close_attempt(conn, due.partner_id, due.reference, paid=True, error=None)
            await emit(conn, "invoice.paid", partner_id=due.partner_id, data={
                "invoice_id": invoice.id, "number": invoice.number, "kind": "subscription_invoice",
                "purpose": invoice.purpose, "cycle": invoice.cycle, "amount_micros": invoice.amount_micros,
                "currency": invoice.currency})
            if on_paid is not None:
                await on_paid(conn, invoice)
    log.info("account.charged", partner_id=due.partner_id, reference=due.reference, amount=due.amount_micros,
             invoice=invoice.number)
    return Paid(invoice)
