"""THE way anything charges a partner's card: once per (partner_id, reference).

    charge = await charge_partner(pool, context.payments, partner_id=p, amount_micros=a,
                                  reference="topup:<Idempotency-Key>", description="Wallet top-up")

1. In its own transaction, the charge's row is written PENDING (with the card and the
   amount) and committed before the provider hears of it.
2. Under that row's lock, the provider is called with the idempotency key
   ``f"{partner_id}:{reference}"``; the row becomes SUCCEEDED or DECLINED.

So a reference already SUCCEEDED returns the stored ``Charge`` without calling the provider;
one left PENDING (the process died between 1 and 2, or during 2) is completed with the same
key and the same card and amount, so the provider charges it once; concurrent callers wait
on the row lock and the second sees the first's outcome. A reference charges once: the
returned ``Charge`` is the truth (its amount is the first call's), post what it says.

A DECLINED reference raises its stored ``PaymentDeclined`` again without calling the
provider (a job that runs every minute must not hammer a refused card), unless the
partner's default card changed since, or the caller passes ``retry_declined=True`` (a
person asked again): then it is a new attempt, with the key ``"<partner>:<reference>:<n>"``.

The caller posts its wallet credit or writes its invoice AFTER this returned, with the same
reference; a caller that died in between finds the charge SUCCEEDED when it runs again.
"""

from __future__ import annotations

import asyncpg
import structlog

from controlplane.db.connection import Connection, Executor
from controlplane.payments import store
from controlplane.payments.models import Charge, ChargeRow, ChargeStatus
from controlplane.payments.provider import ChargeResult, NoPaymentMethod, PaymentDeclined, PaymentProvider, PaymentsDisabled
from controlplane.shared import money
from controlplane.shared.ids import new_id

__all__ = ["Charge", "ChargeStatus", "charge_partner", "idempotency_key"]

log = structlog.get_logger(__name__)
MAX_REFERENCE = 200


def idempotency_key(partner_id: str, reference: str, attempt: int = 1) -> str:
    """The provider's idempotency key of a charge: one per (partner, reference, attempt)."""
    key = f"{partner_id}:{reference}"
    return key if attempt == 1 else f"{key}:{attempt}"


async def charge_partner(pool: asyncpg.Pool, provider: PaymentProvider | None, *, partner_id: str,
                         amount_micros: int, reference: str, description: str,
                         retry_declined: bool = False) -> Charge:
    """Charge the partner's default card ``amount_micros`` (whole cents) once per ``reference``.

    Raises PaymentsDisabled (no provider), NoPaymentMethod (no default card), PaymentDeclined
    (refused: the charge is DECLINED), PaymentUnavailable (provider unreachable: the charge
    stays PENDING and the next call with the reference completes it), ValueError (an amount
    that is not a positive whole number of cents, an empty or overlong reference).
    """
    if provider is None:
        raise PaymentsDisabled()
    money.to_cents(amount_micros)  # ValueError on fractions of a cent: the caller rounds (round_cents)
    if amount_micros <= 0:
        raise ValueError(f"a charge is positive, not {amount_micros} micros")
    if not reference or len(reference) > MAX_REFERENCE:
        raise ValueError(f"a charge reference has 1 to {MAX_REFERENCE} characters")
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await _pending(conn, partner_id, amount_micros, reference, description, retry_declined)
        if row.charge.status is ChargeStatus.SUCCEEDED:
            return row.charge
        if row.charge.status is ChargeStatus.DECLINED:
            raise _declined(row)
        return await _complete(conn, provider, partner_id, reference)


async def _pending(conn: Connection, partner_id: str, amount_micros: int, reference: str,
                   description: str, retry_declined: bool) -> ChargeRow:
    """Step 1: the row as it stands, made PENDING (committed by the caller's transaction)."""
    row = await store.charge_row(conn, partner_id, reference, lock=True)
    if row is not None and row.charge.status is not ChargeStatus.DECLINED:
        if row.charge.amount_micros != amount_micros:
            log.warning("payments.reference_amount_differs", partner_id=partner_id, reference=reference,
                        stored=row.charge.amount_micros, asked=amount_micros)
        return row
    customer = await store.customer_id(conn, partner_id)
    card = await store.default_method(conn, partner_id)
    if customer is None or card is None:
        raise NoPaymentMethod(partner_id)
    if row is None:
        if not await store.insert_pending(conn, new_id("chg"), partner_id, reference, amount_micros,
                                          money.currency(), description, customer, card.method_id):
            # A concurrent caller inserted it; its row (locked until it commits) is the one.
            row = await store.charge_row(conn, partner_id, reference, lock=True)
            assert row is not None
            return row
    elif retry_declined or row.method_id != card.method_id:
        await store.restart_declined(conn, row.charge.charge_id, amount_micros, money.currency(), description,
                                     customer, card.method_id)
    else:
        return row
    fresh = await store.charge_row(conn, partner_id, reference)
    assert fresh is not None
    return fresh


async def _complete(conn: Connection, provider: PaymentProvider, partner_id: str,
                    reference: str) -> Charge:
    """Step 2: the provider call, under the row's lock; the row becomes SUCCEEDED or DECLINED."""
    declined: PaymentDeclined | None = None
    result: ChargeResult | None = None
    async with conn.transaction():
        row = await store.charge_row(conn, partner_id, reference, lock=True)
        assert row is not None
        if row.charge.status is ChargeStatus.SUCCEEDED:
            return row.charge
        if row.charge.status is ChargeStatus.DECLINED:
            raise _declined(row)
        key = idempotency_key(partner_id, reference, row.attempt)
        try:
            result = await provider.charge(customer_id=row.customer_id, method_id=row.method_id,
                                           amount_micros=row.charge.amount_micros, currency=row.currency,
                                           description=row.description, idempotency_key=key)
        except PaymentDeclined as exc:
            declined = exc
            await store.mark_declined(conn, row.charge.charge_id, exc.code, exc.message)
        else:
            await store.mark_succeeded(conn, row.charge.charge_id, result.provider_charge_id)
    if declined is not None:
        log.info("payments.charge_declined", partner_id=partner_id, reference=reference, code=declined.code)
        raise declined
    assert result is not None
    log.info("payments.charge_succeeded", partner_id=partner_id, reference=reference,
             amount_micros=row.charge.amount_micros, provider_charge_id=result.provider_charge_id)
    done = await store.charge_row(conn, partner_id, reference)
    assert done is not None
    return done.charge


def _declined(row: ChargeRow) -> PaymentDeclined:
    return PaymentDeclined(row.decline_code or "card_declined", row.decline_message or "the card was declined")


async def charge_of(conn: Executor, partner_id: str, reference: str) -> Charge | None:
    """The charge made (or being made) for a reference, None when there is none."""
    row = await store.charge_row(conn, partner_id, reference)
    return None if row is None else row.charge
