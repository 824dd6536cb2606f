"""SQL of payments: the partner's provider customer, its payment methods, its charges."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from controlplane.db.connection import Connection, Executor
from controlplane.payments.models import Charge, ChargeRow, ChargeStatus, PaymentMethodView
from controlplane.payments.provider import CardInfo


def _view(r: asyncpg.Record) -> PaymentMethodView:
    return PaymentMethodView(id=r["id"], type="card", brand=r["brand"], last4=r["last4"],
                             exp_month=r["exp_month"], exp_year=r["exp_year"], is_default=r["is_default"],
                             created_at=r["created_at"])


def _card(r: asyncpg.Record) -> CardInfo:
    return CardInfo(method_id=r["id"], brand=r["brand"], last4=r["last4"], exp_month=r["exp_month"],
                    exp_year=r["exp_year"])


# ---------------------------------------------------------------- customers


async def customer_id(conn: Executor, partner_id: str) -> str | None:
    value = await conn.fetchval("SELECT customer_id FROM payment_customers WHERE partner_id = $1", partner_id)
    return None if value is None else str(value)


async def save_customer(conn: Executor, partner_id: str, provider: str, customer: str) -> str:
    """Keep the partner's customer; the one stored first wins (both come from one idempotency key)."""
    await conn.execute("INSERT INTO payment_customers (partner_id, provider, customer_id) VALUES ($1, $2, $3)"
                       " ON CONFLICT (partner_id) DO NOTHING", partner_id, provider, customer)
    stored = await customer_id(conn, partner_id)
    assert stored is not None
    return stored


async def lock_customer_creation(conn: Connection, partner_id: str) -> None:
    """Until the transaction ends: one creator of the partner's customer at a time (the provider
    answers a second request with the same idempotency key 409 while the first runs)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"payments.customer:{partner_id}")


async def partner_exists(conn: Executor, partner_id: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM partners WHERE id = $1)", partner_id))


async def lock_partner(conn: Connection, partner_id: str) -> bool:
    """Serialises changes to one partner's payment methods (the default flag); False: no partner."""
    return await conn.fetchval("SELECT true FROM partners WHERE id = $1 FOR UPDATE", partner_id) is not None


# ---------------------------------------------------------------- payment methods


async def methods(conn: Executor, partner_id: str) -> list[PaymentMethodView]:
    rows = await conn.fetch("SELECT * FROM payment_methods WHERE partner_id = $1"
                            " ORDER BY is_default DESC, created_at DESC, id", partner_id)
    return [_view(r) for r in rows]


async def method(conn: Executor, partner_id: str, method_id: str) -> PaymentMethodView | None:
    r = await conn.fetchrow("SELECT * FROM payment_methods WHERE partner_id = $1 AND id = $2",
                            partner_id, method_id)
    return None if r is None else _view(r)


async def method_owner(conn: Executor, method_id: str) -> str | None:
    value = await conn.fetchval("SELECT partner_id FROM payment_methods WHERE id = $1", method_id)
    return None if value is None else str(value)


async def default_method(conn: Executor, partner_id: str) -> CardInfo | None:
    """The card charges go to; None: the partner has none."""
    r = await conn.fetchrow("SELECT * FROM payment_methods WHERE partner_id = $1 AND is_default", partner_id)
    return None if r is None else _card(r)


async def insert_method(conn: Connection, partner_id: str, card: CardInfo, *, default: bool) -> None:
    await conn.execute(
        "INSERT INTO payment_methods (id, partner_id, brand, last4, exp_month, exp_year, is_default)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        card.method_id, partner_id, card.brand, card.last4, card.exp_month, card.exp_year, default)


async def set_default(conn: Connection, partner_id: str, method_id: str | None) -> None:
    """Make ``method_id`` the default (None: the newest remaining one, if any)."""
    await conn.execute("UPDATE payment_methods SET is_default = false WHERE partner_id = $1 AND is_default",
                       partner_id)
    if method_id is None:
        method_id = await conn.fetchval("SELECT id FROM payment_methods WHERE partner_id = $1"
                                        " ORDER BY created_at DESC, id DESC LIMIT 1", partner_id)
    if method_id is not None:
        await conn.execute("UPDATE payment_methods SET is_default = true WHERE partner_id = $1 AND id = $2",
                           partner_id, method_id)


async def delete_method(conn: Connection, partner_id: str, method_id: str) -> bool:
    status = await conn.execute("DELETE FROM payment_methods WHERE partner_id = $1 AND id = $2",
                                partner_id, method_id)
    return bool(status.endswith(" 1"))


# ---------------------------------------------------------------- charges


def _charge_row(r: asyncpg.Record) -> ChargeRow:
    return ChargeRow(
        charge=Charge(charge_id=r["id"], partner_id=r["partner_id"], reference=r["reference"],
                      amount_micros=r["amount_micros"], status=ChargeStatus(r["status"]),
                      provider_charge_id=r["provider_charge_id"], created_at=r["created_at"]),
        currency=r["currency"], description=r["description"], attempt=r["attempt"],
        customer_id=r["customer_id"], method_id=r["method_id"], decline_code=r["decline_code"],
        decline_message=r["decline_message"])


async def charge_row(conn: Executor, partner_id: str, reference: str, *, lock: bool = False) -> ChargeRow | None:
    r = await conn.fetchrow("SELECT * FROM payment_charges WHERE partner_id = $1 AND reference = $2"
                            + (" FOR UPDATE" if lock else ""), partner_id, reference)
    return None if r is None else _charge_row(r)


async def insert_pending(conn: Connection, charge_id: str, partner_id: str, reference: str, amount_micros: int,
                         currency: str, description: str, customer: str, method_id: str) -> bool:
    """False: a concurrent caller inserted this reference first."""
    status = await conn.execute(
        "INSERT INTO payment_charges (id, partner_id, reference, amount_micros, currency, description, status,"
        " customer_id, method_id) VALUES ($1, $2, $3, $4, $5, $6, 'PENDING', $7, $8)"
        " ON CONFLICT (partner_id, reference) DO NOTHING",
        charge_id, partner_id, reference, amount_micros, currency, description, customer, method_id)
    return bool(status.endswith(" 1"))


async def restart_declined(conn: Connection, charge_id: str, amount_micros: int, currency: str, description: str,
                           customer: str, method_id: str) -> None:
    """A declined reference charged again: a new attempt (a new idempotency key)."""
    await conn.execute(
        "UPDATE payment_charges SET status = 'PENDING', attempt = attempt + 1, amount_micros = $2, currency = $3,"
        " description = $4, customer_id = $5, method_id = $6, decline_code = NULL, decline_message = NULL,"
        " updated_at = clock_timestamp() WHERE id = $1 AND status = 'DECLINED'",
        charge_id, amount_micros, currency, description, customer, method_id)


async def mark_succeeded(conn: Connection, charge_id: str, provider_charge_id: str) -> None:
    await conn.execute("UPDATE payment_charges SET status = 'SUCCEEDED', provider_charge_id = $2,"
                       " updated_at = clock_timestamp() WHERE id = $1", charge_id, provider_charge_id)


async def mark_declined(conn: Connection, charge_id: str, code: str, message: str) -> None:
    await conn.execute("UPDATE payment_charges SET status = 'DECLINED', decline_code = $2, decline_message = $3,"
                       " updated_at = clock_timestamp() WHERE id = $1", charge_id, code, message[:500])


async def pending_references(conn: Executor, older_than: datetime) -> list[tuple[str, str]]:
    """(partner_id, reference) of charges left PENDING since before ``older_than`` (a crash)."""
    rows = await conn.fetch("SELECT partner_id, reference FROM payment_charges"
                            " WHERE status = 'PENDING' AND updated_at < $1 ORDER BY updated_at", older_than)
    return [(r["partner_id"], r["reference"]) for r in rows]
