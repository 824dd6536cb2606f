"""SQL of collection: modes, tenants' customers and cards, charges, payments, credit notes."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from controlplane.collection.models import (
    ChargeStatus,
    CreditNoteRecord,
    CreditNoteStatus,
    ModeSettings,
    PaymentRecord,
    TenantCharge,
    TenantMethodView,
)
from controlplane.collection.rules import Refundable, StripeMode
from controlplane.db.connection import Connection, Executor
from controlplane.shared.payments import CardInfo

# ---------------------------------------------------------------- modes


async def mode(conn: Executor, partner_id: str) -> ModeSettings:
    """The partner's mode; platform (the default, no setup) when never set."""
    r = await conn.fetchrow("SELECT * FROM collection_modes WHERE partner_id = $1", partner_id)
    if r is None:
        return ModeSettings(partner_id, StripeMode.PLATFORM, None, None, None, None, None)
    return ModeSettings(partner_id=r["partner_id"], mode=StripeMode(r["mode"]),
                        connect_account_id=r["connect_account_id"], secret_key_sealed=r["secret_key_sealed"],
                        secret_key_last4=r["secret_key_last4"], publishable_key=r["publishable_key"],
                        updated_at=r["updated_at"])


async def save_mode(conn: Executor, s: ModeSettings) -> None:
    await conn.execute(
        "INSERT INTO collection_modes (partner_id, mode, connect_account_id, secret_key_sealed, secret_key_last4,"
        " publishable_key, updated_at) VALUES ($1, $2, $3, $4, $5, $6, now())"
        " ON CONFLICT (partner_id) DO UPDATE SET mode = $2, connect_account_id = $3, secret_key_sealed = $4,"
        " secret_key_last4 = $5, publishable_key = $6, updated_at = now()",
        s.partner_id, s.mode.value, s.connect_account_id, s.secret_key_sealed, s.secret_key_last4,
        s.publishable_key)


async def partner_exists(conn: Executor, partner_id: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM partners WHERE id = $1)", partner_id))


# ---------------------------------------------------------------- tenants, customers


async def tenant(conn: Executor, partner_id: str, tenant_id: str) -> tuple[str, str] | None:
    """(name, billing email) of the partner's tenant; None: no such tenant for this partner."""
    r = await conn.fetchrow("SELECT name, billing_email FROM tenants WHERE id = $1 AND partner_id = $2",
                            tenant_id, partner_id)
    return None if r is None else (r["name"], r["billing_email"])


async def lock_tenant(conn: Connection, tenant_id: str) -> None:
    await conn.execute("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)


async def customer_id(conn: Executor, tenant_id: str, account: str) -> str | None:
    value = await conn.fetchval("SELECT customer_id FROM collection_customers WHERE tenant_id = $1 AND account = $2",
                                tenant_id, account)
    return None if value is None else str(value)


async def save_customer(conn: Executor, partner_id: str, tenant_id: str, account: str, customer: str) -> str:
    await conn.execute("INSERT INTO collection_customers (tenant_id, account, partner_id, customer_id)"
                       " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", tenant_id, account, partner_id, customer)
    stored = await customer_id(conn, tenant_id, account)
    assert stored is not None
    return stored


async def lock_key(conn: Connection, key: str) -> None:
    """A transaction-scoped advisory lock on ``key``."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)


# ---------------------------------------------------------------- cards


def _method(r: asyncpg.Record) -> TenantMethodView:
    return TenantMethodView(id=r["id"], tenant_id=r["tenant_id"], type="card", brand=r["brand"], last4=r["last4"],
                            exp_month=r["exp_month"], exp_year=r["exp_year"], is_default=r["is_default"],
                            created_at=r["created_at"])


async def methods(conn: Executor, tenant_id: str, account: str) -> list[TenantMethodView]:
    rows = await conn.fetch("SELECT * FROM collection_methods WHERE tenant_id = $1 AND account = $2"
                            " ORDER BY is_default DESC, created_at DESC, id", tenant_id, account)
    return [_method(r) for r in rows]


async def method(conn: Executor, tenant_id: str, method_id: str) -> TenantMethodView | None:
    r = await conn.fetchrow("SELECT * FROM collection_methods WHERE tenant_id = $1 AND id = $2", tenant_id, method_id)
    return None if r is None else _method(r)


async def method_owner(conn: Executor, method_id: str) -> str | None:
    value = await conn.fetchval("SELECT tenant_id FROM collection_methods WHERE id = $1", method_id)
    return None if value is None else str(value)


async def method_account(conn: Executor, method_id: str) -> str:
    """The Stripe account a saved card lives at (the card exists)."""
    return str(await conn.fetchval("SELECT account FROM collection_methods WHERE id = $1", method_id))


async def default_method(conn: Executor, tenant_id: str, account: str) -> TenantMethodView | None:
    r = await conn.fetchrow("SELECT * FROM collection_methods WHERE tenant_id = $1 AND account = $2 AND is_default",
                            tenant_id, account)
    return None if r is None else _method(r)


async def insert_method(conn: Connection, partner_id: str, tenant_id: str, account: str, card: CardInfo, *,
                        default: bool) -> None:
    await conn.execute(
        "INSERT INTO collection_methods (id, tenant_id, partner_id, account, brand, last4, exp_month, exp_year,"
        " is_default) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        card.method_id, tenant_id, partner_id, account, card.brand, card.last4, card.exp_month, card.exp_year, default)


async def set_default(conn: Connection, tenant_id: str, account: str, method_id: str | None) -> None:
    """Make ``method_id`` the default (None: the newest remaining one, if any)."""
    await conn.execute("UPDATE collection_methods SET is_default = false WHERE tenant_id = $1 AND account = $2"
                       " AND is_default", tenant_id, account)
    if method_id is None:
        method_id = await conn.fetchval("SELECT id FROM collection_methods WHERE tenant_id = $1 AND account = $2"
                                        " ORDER BY created_at DESC, id DESC LIMIT 1", tenant_id, account)
    if method_id is not None:
        await conn.execute("UPDATE collection_methods SET is_default = true WHERE tenant_id = $1 AND id = $2",
                           tenant_id, method_id)


async def delete_method(conn: Connection, tenant_id: str, method_id: str) -> None:
    await conn.execute("DELETE FROM collection_methods WHERE tenant_id = $1 AND id = $2", tenant_id, method_id)


# ---------------------------------------------------------------- charges


def _charge(r: asyncpg.Record) -> TenantCharge:
    return TenantCharge(
        charge_id=r["id"], partner_id=r["partner_id"], tenant_id=r["tenant_id"], invoice_id=r["invoice_id"],
        attempt=r["attempt"], reference=r["reference"], mode=StripeMode(r["mode"]), account=r["account"],
        amount_micros=r["amount_micros"], application_fee_micros=r["application_fee_micros"],
        currency=r["currency"], status=ChargeStatus(r["status"]), customer_id=r["customer_id"],
        method_id=r["method_id"], provider_charge_id=r["provider_charge_id"], decline_code=r["decline_code"],
        decline_message=r["decline_message"], recorded=r["recorded_at"] is not None)


async def charge(conn: Executor, partner_id: str, reference: str, *, lock: bool = False) -> TenantCharge | None:
    r = await conn.fetchrow("SELECT * FROM collection_charges WHERE partner_id = $1 AND reference = $2"
                            + (" FOR UPDATE" if lock else ""), partner_id, reference)
    return None if r is None else _charge(r)


async def open_charges(conn: Executor, invoice_id: str) -> list[TenantCharge]:
    """The invoice's charges still to finish: PENDING, or SUCCEEDED and not yet recorded."""
    rows = await conn.fetch("SELECT * FROM collection_charges WHERE invoice_id = $1 AND (status = 'PENDING'"
                            " OR (status = 'SUCCEEDED' AND recorded_at IS NULL)) ORDER BY attempt", invoice_id)
    return [_charge(r) for r in rows]


async def stale_charges(conn: Executor, older_than: datetime) -> list[TenantCharge]:
    rows = await conn.fetch("SELECT * FROM collection_charges WHERE (status = 'PENDING' OR (status = 'SUCCEEDED'"
                            " AND recorded_at IS NULL)) AND updated_at < $1 ORDER BY updated_at LIMIT 100", older_than)
    return [_charge(r) for r in rows]


async def uncharged_invoices(conn: Executor, issued_from: datetime, issued_to: datetime) -> list[str]:
    """SENT invoices issued in the window that no charge was started for although their tenant
    has a card: the process died between the invoice's commit and its after-commit charge.
    (Reads the invoices capability's table: the one query here that does.)"""
    rows = await conn.fetch(
        "SELECT i.id FROM tenant_invoices i WHERE i.status = 'SENT' AND i.issued_at >= $1 AND i.issued_at < $2"
        " AND NOT EXISTS (SELECT 1 FROM collection_charges c WHERE c.invoice_id = i.id)"
        " AND EXISTS (SELECT 1 FROM collection_methods m WHERE m.tenant_id = i.tenant_id AND m.is_default)"
        " ORDER BY i.issued_at LIMIT 100", issued_from, issued_to)
    return [r["id"] for r in rows]


async def insert_charge(conn: Connection, c: TenantCharge) -> bool:
    """False: a concurrent caller inserted this reference first."""
    status = await conn.execute(
        "INSERT INTO collection_charges (id, partner_id, tenant_id, invoice_id, attempt, reference, mode, account,"
        " amount_micros, application_fee_micros, currency, status, customer_id, method_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'PENDING', $12, $13)"
        " ON CONFLICT (partner_id, reference) DO NOTHING",
        c.charge_id, c.partner_id, c.tenant_id, c.invoice_id, c.attempt, c.reference, c.mode.value, c.account,
        c.amount_micros, c.application_fee_micros, c.currency, c.customer_id, c.method_id)
    return bool(status.endswith(" 1"))


async def mark_succeeded(conn: Connection, charge_id: str, provider_charge_id: str) -> None:
    await conn.execute("UPDATE collection_charges SET status = 'SUCCEEDED', provider_charge_id = $2,"
                       " updated_at = clock_timestamp() WHERE id = $1", charge_id, provider_charge_id)


async def mark_declined(conn: Connection, charge_id: str, code: str, message: str) -> None:
    await conn.execute("UPDATE collection_charges SET status = 'DECLINED', decline_code = $2, decline_message = $3,"
                       " updated_at = clock_timestamp() WHERE id = $1", charge_id, code, message[:500])


async def mark_recorded(conn: Connection, charge_id: str) -> None:
    await conn.execute("UPDATE collection_charges SET recorded_at = clock_timestamp(), updated_at = clock_timestamp()"
                       " WHERE id = $1", charge_id)


# ---------------------------------------------------------------- payments


def _payment(r: asyncpg.Record) -> PaymentRecord:
    return PaymentRecord(payment_id=r["id"], partner_id=r["partner_id"], tenant_id=r["tenant_id"],
                         invoice_id=r["invoice_id"], reference=r["reference"], source=r["source"], mode=r["mode"],
                         charge_id=r["charge_id"], amount_micros=r["amount_micros"], fee_micros=r["fee_micros"],
                         currency=r["currency"], note=r["note"], created_at=r["created_at"])


async def payment_by_reference(conn: Executor, partner_id: str, reference: str) -> PaymentRecord | None:
    r = await conn.fetchrow("SELECT * FROM collection_payments WHERE partner_id = $1 AND reference = $2",
                            partner_id, reference)
    return None if r is None else _payment(r)


async def insert_payment(conn: Connection, p: PaymentRecord) -> None:
    await conn.execute(
        "INSERT INTO collection_payments (id, partner_id, tenant_id, invoice_id, reference, source, mode, charge_id,"
        " amount_micros, fee_micros, currency, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        " ON CONFLICT (partner_id, reference) DO NOTHING",
        p.payment_id, p.partner_id, p.tenant_id, p.invoice_id, p.reference, p.source, p.mode, p.charge_id,
        p.amount_micros, p.fee_micros, p.currency, p.note)


async def payments(conn: Executor, invoice_id: str) -> list[PaymentRecord]:
    rows = await conn.fetch("SELECT * FROM collection_payments WHERE invoice_id = $1 ORDER BY created_at, id",
                            invoice_id)
    return [_payment(r) for r in rows]


async def refundables(conn: Executor, invoice_id: str) -> list[Refundable]:
    """The invoice's payments, oldest first, with what credit notes not FAILED took of each."""
    rows = await conn.fetch(
        "SELECT p.id, p.source, p.amount_micros, coalesce(sum(a.amount_micros) FILTER"
        " (WHERE n.status <> 'FAILED'), 0) AS refunded FROM collection_payments p"
        " LEFT JOIN credit_note_allocations a ON a.payment_id = p.id"
        " LEFT JOIN credit_notes n ON n.id = a.credit_note_id"
        " WHERE p.invoice_id = $1 GROUP BY p.id ORDER BY p.created_at, p.id", invoice_id)
    return [Refundable(r["id"], r["source"], r["amount_micros"], int(r["refunded"])) for r in rows]


async def settlement(conn: Executor, partner_id: str) -> tuple[int, int, int, int]:
    """Platform mode's card payments: (collected, fees, refunded, refunded fees)."""
    paid = await conn.fetchrow("SELECT coalesce(sum(amount_micros), 0) AS a, coalesce(sum(fee_micros), 0) AS f"
                               " FROM collection_payments WHERE partner_id = $1 AND source = 'card'"
                               " AND mode = 'platform'", partner_id)
    back = await conn.fetchrow(
        "SELECT coalesce(sum(a.amount_micros), 0) AS a, coalesce(sum(a.fee_micros), 0) AS f"
        " FROM credit_note_allocations a JOIN credit_notes n ON n.id = a.credit_note_id"
        " JOIN collection_payments p ON p.id = a.payment_id"
        " WHERE n.partner_id = $1 AND n.status = 'SUCCEEDED' AND p.source = 'card' AND p.mode = 'platform'",
        partner_id)
    assert paid is not None and back is not None
    return int(paid["a"]), int(paid["f"]), int(back["a"]), int(back["f"])


# ---------------------------------------------------------------- credit notes


def _note(r: asyncpg.Record) -> CreditNoteRecord:
    return CreditNoteRecord(
        credit_note_id=r["id"], partner_id=r["partner_id"], tenant_id=r["tenant_id"], invoice_id=r["invoice_id"],
        reference=r["reference"], status=CreditNoteStatus(r["status"]), number=r["number"],
        amount_micros=r["amount_micros"], usage_credit_micros=r["usage_credit_micros"], currency=r["currency"],
        reason=r["reason"], failure=r["failure"], created_at=r["created_at"], issued_at=r["issued_at"])


async def credit_note(conn: Executor, credit_note_id: str) -> CreditNoteRecord | None:
    """A credit note by id (documents renders it)."""
    r = await conn.fetchrow("SELECT * FROM credit_notes WHERE id = $1", credit_note_id)
    return None if r is None else _note(r)


async def credit_note_by_reference(conn: Executor, partner_id: str, reference: str) -> CreditNoteRecord | None:
    r = await conn.fetchrow("SELECT * FROM credit_notes WHERE partner_id = $1 AND reference = $2",
                            partner_id, reference)
    return None if r is None else _note(r)


async def credit_notes(conn: Executor, invoice_id: str) -> list[CreditNoteRecord]:
    rows = await conn.fetch("SELECT * FROM credit_notes WHERE invoice_id = $1 ORDER BY created_at, id", invoice_id)
    return [_note(r) for r in rows]


async def pending_credit_notes(conn: Executor, older_than: datetime) -> list[CreditNoteRecord]:
    rows = await conn.fetch("SELECT * FROM credit_notes WHERE status = 'PENDING' AND created_at < $1"
                            " ORDER BY created_at LIMIT 100", older_than)
    return [_note(r) for r in rows]


async def insert_credit_note(conn: Connection, n: CreditNoteRecord) -> None:
    await conn.execute(
        "INSERT INTO credit_notes (id, partner_id, tenant_id, invoice_id, reference, status, amount_micros,"
        " usage_credit_micros, currency, reason) VALUES ($1, $2, $3, $4, $5, 'PENDING', $6, $7, $8, $9)",
        n.credit_note_id, n.partner_id, n.tenant_id, n.invoice_id, n.reference, n.amount_micros,
        n.usage_credit_micros, n.currency, n.reason)


async def insert_allocation(conn: Connection, credit_note_id: str, payment_id: str, amount_micros: int,
                            fee_micros: int) -> None:
    await conn.execute("INSERT INTO credit_note_allocations (credit_note_id, payment_id, amount_micros, fee_micros)"
                       " VALUES ($1, $2, $3, $4)", credit_note_id, payment_id, amount_micros, fee_micros)


async def allocations(conn: Executor, credit_note_id: str) -> list[tuple[str, int, str | None, str | None, str | None]]:
    """(payment id, amount, provider refund id, card charge's provider id or None, its account) per allocation."""
    rows = await conn.fetch(
        "SELECT a.payment_id, a.amount_micros, a.provider_refund_id, c.provider_charge_id, c.account"
        " FROM credit_note_allocations a JOIN collection_payments p ON p.id = a.payment_id"
        " LEFT JOIN collection_charges c ON c.id = p.charge_id WHERE a.credit_note_id = $1 ORDER BY a.payment_id",
        credit_note_id)
    return [(r["payment_id"], r["amount_micros"], r["provider_refund_id"], r["provider_charge_id"], r["account"])
            for r in rows]


async def set_refund_id(conn: Executor, credit_note_id: str, payment_id: str, provider_refund_id: str) -> None:
    await conn.execute("UPDATE credit_note_allocations SET provider_refund_id = $3 WHERE credit_note_id = $1"
                       " AND payment_id = $2", credit_note_id, payment_id, provider_refund_id)


async def fail_credit_note(conn: Executor, credit_note_id: str, failure: str) -> None:
    await conn.execute("UPDATE credit_notes SET status = 'FAILED', failure = $2 WHERE id = $1 AND status = 'PENDING'",
                       credit_note_id, failure[:500])


async def issue_credit_note(conn: Connection, credit_note_id: str, partner_id: str) -> str:
    """Number the credit note (gapless per partner: the counter row is locked until commit)."""
    await conn.execute("INSERT INTO credit_note_counters (partner_id) VALUES ($1) ON CONFLICT DO NOTHING", partner_id)
    r = await conn.fetchrow("UPDATE credit_note_counters SET last_seq = last_seq + 1 WHERE partner_id = $1"
                            " RETURNING prefix, last_seq", partner_id)
    assert r is not None
    number = f"{r['prefix']}{r['last_seq']:06d}"
    await conn.execute("UPDATE credit_notes SET status = 'SUCCEEDED', seq = $2, number = $3, issued_at = now()"
                       " WHERE id = $1", credit_note_id, r["last_seq"], number)
    return number


async def lock_invoice(conn: Connection, invoice_id: str) -> None:
    """Serialises payments and refunds of one invoice (the refund limit is checked under it)."""
    await lock_key(conn, f"collection.invoice:{invoice_id}")
