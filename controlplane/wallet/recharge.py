"""Auto-recharge: charge the default card when the balance is under the threshold, at most
once per UTC hour (the reference is the hour's), and credit the wallet with the same
reference. The one owner of that rule, used by the wallet's follower and by a purchase
that finds the wallet short (seed 003: "charged to your card if your wallet is empty and
auto-recharge is on")."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import structlog

from controlplane.events import emit
from controlplane.payments.charges import charge_partner
from controlplane.payments.provider import (NoPaymentMethod, PaymentDeclined, PaymentProvider, PaymentsDisabled,
                                            PaymentUnavailable)
from controlplane.shared import money
from controlplane.wallet import store
from controlplane.wallet.models import Entry, EntryKind, Posted, needs_recharge, recharge_reference

log = structlog.get_logger(__name__)
DECLINED = "payment_declined"
NO_METHOD = "no_payment_method"


async def emit_declined(pool: asyncpg.Pool, partner_id: str, reference: str, amount_micros: int,
                        exc: PaymentDeclined, *, turn_off: bool) -> None:
    """``payment.failed`` (the mail notifier emails it); for auto-recharge, once, with it turned off."""
    async with pool.acquire() as conn, conn.transaction():
        if turn_off and not await store.turn_off(conn, partner_id, DECLINED):
            return  # another daemon (or an earlier pass) took this decline already
        await emit(conn, "payment.failed", partner_id=partner_id,
                   data={"payer": "partner", "reference": reference, "amount_micros": amount_micros,
                         "currency": money.currency(),
                         "code": exc.code, "message": exc.message})


async def recharge(pool: asyncpg.Pool, provider: PaymentProvider | None, partner_id: str, now: datetime, *,
                   needed: int = 0) -> Posted | None:
    """Charge and credit the recharge amount when the balance is under the threshold (or under
    ``needed``, what a purchase lacks); the credit posted (``created`` False: this hour's was
    already), or None when nothing was due or the charge failed (a decline emits
    payment.failed and turns auto-recharge off)."""
    async with pool.acquire() as conn:
        balance, s = await store.settings(conn, partner_id)
        due = needs_recharge(balance, s) or (s.enabled and s.amount_micros > 0 and balance < needed)
        if not due or await store.in_trial(conn, partner_id):
            return None
    reference = recharge_reference(partner_id, now)
    try:
        charge = await charge_partner(pool, provider, partner_id=partner_id, amount_micros=s.amount_micros,
                                      reference=reference, description="Wallet auto-recharge")
    except PaymentDeclined as exc:
        log.warning("wallet.auto_recharge_declined", partner_id=partner_id, code=exc.code)
        await emit_declined(pool, partner_id, reference, s.amount_micros, exc, turn_off=True)
        return None
    except NoPaymentMethod:
        async with pool.acquire() as conn, conn.transaction():
            await store.turn_off(conn, partner_id, NO_METHOD)
        return None
    except (PaymentsDisabled, PaymentUnavailable) as exc:  # the sweep tries again
        log.warning("wallet.auto_recharge_unavailable", partner_id=partner_id, error=type(exc).__name__)
        return None
    async with pool.acquire() as conn, conn.transaction():
        posted = await store.post(conn, Entry(partner_id, EntryKind.AUTO_RECHARGE, charge.amount_micros,
                                              reference, note=f"card charge {charge.charge_id}"))
    if posted.created:
        log.info("wallet.auto_recharged", partner_id=partner_id, amount_micros=charge.amount_micros,
                 balance_micros=posted.balance_micros)
    return posted
