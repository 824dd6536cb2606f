"""SQL of the account capability: partner status, prices, dues and subscription invoices.

Reads other capabilities' rows it bills (extensions, DIDs) but never writes them; wallet
entries go through controlplane.wallet.store, card charges through controlplane.payments.charges.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from cdr_ingest.tiers import Tier, TierPrices, TierSchedule
from controlplane.account.cycle import Unit, UnitKind
from controlplane.account.prices import schedule
from controlplane.db.connection import Connection
from controlplane.shared.pagination import PageRequest, keyset
from provisioning.model import PartnerStatus

Conn = Connection

_PRICE_COLUMNS = ("monthly_fee, max_extensions, per_extension, did_local_monthly, did_toll_free_monthly,"
                  " local_per_minute, toll_free_per_minute")


@dataclass(frozen=True, slots=True)
class PartnerRow:
    id: str
    name: str
    tier: Tier
    status: PartnerStatus
    created_at: datetime
    trial_ends_at: datetime | None
    activated_at: datetime | None
    pending_tier: Tier | None
    pending_tier_from: datetime | None
    fee_invoiced: bool  # the platform invoices the monthly fee itself: no card charge for it


def _partner(r: asyncpg.Record) -> PartnerRow:
    return PartnerRow(r["id"], r["name"], Tier(r["tier"]), PartnerStatus(r["status"]), r["created_at"],
                      r["trial_ends_at"], r["activated_at"], Tier(r["pending_tier"]) if r["pending_tier"] else None,
                      r["pending_tier_from"], r["fee_invoiced"])


async def partner(conn: Conn, partner_id: str, *, lock: bool = False) -> PartnerRow | None:
    row = await conn.fetchrow("SELECT id, name, tier, status, created_at, trial_ends_at, activated_at, pending_tier,"
                              " pending_tier_from, fee_invoiced FROM partners WHERE id = $1" + (" FOR UPDATE" if lock else ""),
                              partner_id)
    return _partner(row) if row else None


async def set_status(conn: Conn, partner_id: str, status: PartnerStatus, *, activated_at: datetime | None = None,
                     fee_invoiced: bool | None = None) -> None:
    await conn.execute("UPDATE partners SET status = $2, activated_at = COALESCE(activated_at, $3),"
                       " fee_invoiced = COALESCE($4, fee_invoiced), updated_at = now() WHERE id = $1",
                       partner_id, status.value, activated_at, fee_invoiced)


async def set_tier(conn: Conn, partner_id: str, tier: Tier, pending: Tier | None = None,
                   pending_from: datetime | None = None) -> None:
    await conn.execute("UPDATE partners SET tier = $2, pending_tier = $3, pending_tier_from = $4, updated_at = now()"
                       " WHERE id = $1", partner_id, tier.value, pending.value if pending else None, pending_from)


async def extension_count(conn: Conn, partner_id: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM extensions e JOIN tenants t ON t.id = e.tenant_id"
                                   " WHERE t.partner_id = $1", partner_id))


async def units(conn: Conn, partner_id: str) -> list[Unit]:
    """Every extension of the partner's tenants and every DID in its inventory (assigned or not:
    a DID is billed until it is returned to the carrier, i.e. its row is deleted)."""
    rows = await conn.fetch(
        "SELECT e.id, 'ext' AS kind, e.created_at, e.tenant_id FROM extensions e"
        " JOIN tenants t ON t.id = e.tenant_id WHERE t.partner_id = $1"
        " UNION ALL SELECT d.id, CASE d.kind WHEN 'toll_free' THEN 'did_toll_free' ELSE 'did_local' END,"
        " d.created_at, d.tenant_id FROM dids d WHERE d.partner_id = $1", partner_id)
    return [Unit(r["id"], UnitKind(r["kind"]), r["created_at"], r["tenant_id"]) for r in rows]


@dataclass(frozen=True, slots=True)
class SetupDue:
    did_id: str
    tenant_id: str | None
    amount_micros: int


async def trial_setup_fees(conn: Conn, partner_id: str) -> list[SetupDue]:
    """Setup fees of the DIDs the partner holds (bought in trial: the wallet paid nothing then)."""
    rows = await conn.fetch("SELECT id, tenant_id, setup_micros FROM dids WHERE partner_id = $1"
                            " AND setup_micros > 0 ORDER BY id", partner_id)
    return [SetupDue(r["id"], r["tenant_id"], int(r["setup_micros"])) for r in rows]


async def partners_page(conn: Conn, status: PartnerStatus, after: str, limit: int) -> list[str]:
    rows = await conn.fetch("SELECT id FROM partners WHERE status = $1 AND id > $2 ORDER BY id LIMIT $3",
                            status.value, after, limit)
    return [r["id"] for r in rows]


async def expired_trials(conn: Conn, now: datetime, limit: int) -> list[str]:
    rows = await conn.fetch("SELECT id FROM partners WHERE status = 'TRIAL' AND trial_ends_at <= $1"
                            " ORDER BY trial_ends_at, id LIMIT $2", now, limit)
    return [r["id"] for r in rows]


async def partners_on_tier(conn: Conn, tier: Tier) -> list[str]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM partners WHERE tier = $1 ORDER BY id", tier.value)]


# ---------------------------------------------------------------- prices


def _prices(tier: Tier, r: asyncpg.Record) -> TierPrices:
    return TierPrices(tier, r["effective_from"], r["monthly_fee"], r["max_extensions"], r["per_extension"],
                      r["did_local_monthly"], r["did_toll_free_monthly"], r["local_per_minute"],
                      r["toll_free_per_minute"])


def _values(p: TierPrices) -> tuple[Any, ...]:
    return (p.effective_from, p.monthly_fee, p.max_extensions, p.per_extension, p.did_local_monthly,
            p.did_toll_free_monthly, p.local_per_minute, p.toll_free_per_minute)


async def tier_prices(conn: Conn) -> list[TierPrices]:
    rows = await conn.fetch(f"SELECT tier, effective_from, {_PRICE_COLUMNS} FROM account_tier_prices")
    return [_prices(Tier(r["tier"]), r) for r in rows]


async def put_tier_prices(conn: Conn, p: TierPrices) -> None:
    """A version with the same tier and date replaces the one posted before."""
    await conn.execute(
        f"INSERT INTO account_tier_prices (tier, effective_from, {_PRICE_COLUMNS})"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (tier, effective_from) DO UPDATE SET"
        " monthly_fee = EXCLUDED.monthly_fee, max_extensions = EXCLUDED.max_extensions,"
        " per_extension = EXCLUDED.per_extension, did_local_monthly = EXCLUDED.did_local_monthly,"
        " did_toll_free_monthly = EXCLUDED.did_toll_free_monthly, local_per_minute = EXCLUDED.local_per_minute,"
        " toll_free_per_minute = EXCLUDED.toll_free_per_minute, scheduled_at = now()",
        p.tier.value, *_values(p))


async def enterprise_prices(conn: Conn, partner_id: str) -> list[TierPrices]:
    rows = await conn.fetch(f"SELECT effective_from, {_PRICE_COLUMNS} FROM account_enterprise_prices"
                            " WHERE partner_id = $1", partner_id)
    return [_prices(Tier.ENTERPRISE, r) for r in rows]


async def put_enterprise_prices(conn: Conn, partner_id: str, p: TierPrices) -> None:
    await conn.execute(
        f"INSERT INTO account_enterprise_prices (partner_id, effective_from, {_PRICE_COLUMNS})"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (partner_id, effective_from) DO UPDATE SET"
        " monthly_fee = EXCLUDED.monthly_fee, max_extensions = EXCLUDED.max_extensions,"
        " per_extension = EXCLUDED.per_extension, did_local_monthly = EXCLUDED.did_local_monthly,"
        " did_toll_free_monthly = EXCLUDED.did_toll_free_monthly, local_per_minute = EXCLUDED.local_per_minute,"
        " toll_free_per_minute = EXCLUDED.toll_free_per_minute, set_at = now()",
        partner_id, *_values(p))


async def schedule_for(conn: Conn, partner_id: str, tier: Tier) -> TierSchedule:
    """The partner's price schedule: the seed's table, the operator's dated changes and, for an
    Enterprise partner, its contract (what the calls' rating and admission price with)."""
    enterprise = await enterprise_prices(conn, partner_id) if Tier(tier) is Tier.ENTERPRISE else []
    return schedule(await tier_prices(conn), enterprise)


# ---------------------------------------------------------------- dues (card charges owed)


@dataclass(frozen=True, slots=True)
class Due:
    partner_id: str
    reference: str
    purpose: str
    cycle: str
    amount_micros: int
    description: str
    lines: list[dict[str, Any]]
    status: str
    attempts: int
    attempt_reference: str | None
    attempt_open: bool
    last_attempt_at: datetime | None
    last_error: str | None


def _due(r: asyncpg.Record) -> Due:
    return Due(r["partner_id"], r["reference"], r["purpose"], r["cycle"], int(r["amount_micros"]), r["description"],
               json.loads(r["lines"]), r["status"], r["attempts"], r["attempt_reference"], r["attempt_open"],
               r["last_attempt_at"], r["last_error"])


async def add_due(conn: Conn, partner_id: str, reference: str, purpose: str, cycle: str, amount: int,
                  description: str, lines: Sequence[dict[str, Any]]) -> Due:
    """The due of this reference. An unpaid one with no attempt in flight takes the new amount (an
    activation retried next month); one in flight keeps its amount (the charge may have gone through)."""
    await conn.execute(
        "INSERT INTO account_dues AS d (partner_id, reference, purpose, cycle, amount_micros, description, lines)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7::jsonb) ON CONFLICT (partner_id, reference) DO UPDATE SET"
        " cycle = EXCLUDED.cycle, amount_micros = EXCLUDED.amount_micros, description = EXCLUDED.description,"
        " lines = EXCLUDED.lines WHERE d.status = 'DUE' AND NOT d.attempt_open",
        partner_id, reference, purpose, cycle, amount, description, json.dumps(list(lines)))
    due = await get_due(conn, partner_id, reference)
    assert due is not None
    return due


async def get_due(conn: Conn, partner_id: str, reference: str, *, lock: bool = False) -> Due | None:
    row = await conn.fetchrow("SELECT * FROM account_dues WHERE partner_id = $1 AND reference = $2"
                              + (" FOR UPDATE" if lock else ""), partner_id, reference)
    return _due(row) if row else None


async def open_attempt(conn: Conn, partner_id: str, reference: str, attempt_reference: str, at: datetime) -> None:
    await conn.execute("UPDATE account_dues SET attempt_reference = $3, attempt_open = true,"
                       " attempts = attempts + 1, last_attempt_at = $4 WHERE partner_id = $1 AND reference = $2",
                       partner_id, reference, attempt_reference, at)


async def close_attempt(conn: Conn, partner_id: str, reference: str, *, paid: bool, error: str | None) -> None:
    await conn.execute("UPDATE account_dues SET attempt_open = false, last_error = $4,"
                       " status = CASE WHEN $3 THEN 'PAID' ELSE status END"
                       " WHERE partner_id = $1 AND reference = $2", partner_id, reference, paid, error)


# ---------------------------------------------------------------- subscription invoices


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    id: str
    number: str
    partner_id: str
    reference: str
    purpose: str
    cycle: str
    tier: Tier
    amount_micros: int
    currency: str
    lines: list[dict[str, Any]]
    charge_reference: str
    provider_charge_id: str | None
    created_at: datetime


def _invoice(r: asyncpg.Record) -> InvoiceRow:
    return InvoiceRow(r["id"], r["number"], r["partner_id"], r["reference"], r["purpose"], r["cycle"], Tier(r["tier"]),
                      int(r["amount_micros"]), r["currency"], json.loads(r["lines"]), r["charge_reference"],
                      r["provider_charge_id"], r["issued_at"])


async def insert_invoice(conn: Conn, *, invoice_id: str, partner_id: str, reference: str, purpose: str, cycle: str,
                         tier: Tier, amount: int, currency: str, lines: Sequence[dict[str, Any]],
                         charge_reference: str, provider_charge_id: str | None, year: int) -> InvoiceRow:
    """Numbered SUB-<year>-<6 digits> from one sequence; one invoice per (partner, reference)."""
    row = await conn.fetchrow(
        "INSERT INTO subscription_invoices (id, number, partner_id, reference, purpose, cycle, tier, amount_micros,"
        " currency, lines, charge_reference, provider_charge_id)"
        " VALUES ($1, 'SUB-' || $12::text || '-' || lpad(nextval('subscription_invoice_seq')::text, 6, '0'),"
        " $2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10,$11) ON CONFLICT (partner_id, reference) DO NOTHING RETURNING *",
        invoice_id, partner_id, reference, purpose, cycle, tier.value, amount, currency, json.dumps(list(lines)),
        charge_reference, provider_charge_id, str(year))
    if row is None:
        row = await conn.fetchrow("SELECT * FROM subscription_invoices WHERE partner_id = $1 AND reference = $2",
                                  partner_id, reference)
        assert row is not None
    return _invoice(row)


async def invoice(conn: Conn, partner_id: str, invoice_id: str) -> InvoiceRow | None:
    row = await conn.fetchrow("SELECT * FROM subscription_invoices WHERE id = $1 AND partner_id = $2",
                              invoice_id, partner_id)
    return _invoice(row) if row else None


async def invoice_by_reference(conn: Conn, partner_id: str, reference: str) -> InvoiceRow | None:
    row = await conn.fetchrow("SELECT * FROM subscription_invoices WHERE partner_id = $1 AND reference = $2",
                              partner_id, reference)
    return _invoice(row) if row else None


async def invoices_page(conn: Conn, partner_id: str, page: PageRequest) -> list[InvoiceRow]:
    args: list[object] = [partner_id]
    condition, order = keyset(page, "", args)
    sql = ("SELECT * FROM (SELECT *, issued_at AS created_at FROM subscription_invoices WHERE partner_id = $1) i"
           + (f" WHERE {condition}" if condition else "") + " " + order)
    return [_invoice(r) for r in await conn.fetch(sql, *args)]
