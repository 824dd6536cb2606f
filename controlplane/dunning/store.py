"""SQL of the dunning capability: the partner's settings and what was done per invoice.
Every function takes the caller's connection, so the job decides the transactions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from controlplane.db.connection import Connection
from controlplane.dunning.models import DunningSettings, DunningSettingsBody, Policy
from controlplane.dunning.schedule import Done, Terms

Conn = Connection


async def settings(conn: Conn, partner_id: str) -> DunningSettings | None:
    """The partner's settings; None when there is no such partner."""
    row = await conn.fetchrow(
        "SELECT s.overdue_after_days, s.suspend_after_days, s.updated_at, s.partner_id IS NOT NULL AS own"
        " FROM partners p LEFT JOIN dunning_settings s ON s.partner_id = p.id WHERE p.id = $1", partner_id)
    if row is None:
        return None
    if not row["own"]:
        return DunningSettings(policy=Policy.PROFILE, overdue_after_days=None, suspend_after_days=None,
                               updated_at=None)
    return DunningSettings(policy=Policy.PARTNER, overdue_after_days=row["overdue_after_days"],
                           suspend_after_days=row["suspend_after_days"], updated_at=row["updated_at"])


async def partner_terms(conn: Conn, partner_id: str) -> Terms | None:
    """The partner's own terms; None: each tenant's profile decides."""
    row = await conn.fetchrow("SELECT overdue_after_days, suspend_after_days FROM dunning_settings"
                              " WHERE partner_id = $1", partner_id)
    return None if row is None else Terms(row["overdue_after_days"], row["suspend_after_days"])


async def put_settings(conn: Conn, partner_id: str, body: DunningSettingsBody) -> None:
    await conn.execute(
        "INSERT INTO dunning_settings (partner_id, overdue_after_days, suspend_after_days) VALUES ($1, $2, $3)"
        " ON CONFLICT (partner_id) DO UPDATE SET overdue_after_days = $2, suspend_after_days = $3,"
        " updated_at = now()", partner_id, body.overdue_after_days, body.suspend_after_days)


async def delete_settings(conn: Conn, partner_id: str) -> None:
    await conn.execute("DELETE FROM dunning_settings WHERE partner_id = $1", partner_id)


@dataclass(frozen=True, slots=True)
class Tracked:
    invoice_id: str
    done: Done


async def track(conn: Conn, invoice_id: str, partner_id: str, tenant_id: str) -> Done:
    """The invoice's row, locked until the caller's transaction ends (concurrent runs queue here)."""
    await conn.execute("INSERT INTO dunning_invoices (invoice_id, partner_id, tenant_id) VALUES ($1, $2, $3)"
                       " ON CONFLICT (invoice_id) DO NOTHING", invoice_id, partner_id, tenant_id)
    row = await conn.fetchrow("SELECT overdue_at, suspended_at, retries FROM dunning_invoices"
                              " WHERE invoice_id = $1 FOR UPDATE", invoice_id)
    assert row is not None
    return Done(overdue=row["overdue_at"] is not None, suspended=row["suspended_at"] is not None,
                retries=row["retries"])


async def mark_overdue(conn: Conn, invoice_id: str, at: datetime) -> None:
    await conn.execute("UPDATE dunning_invoices SET overdue_at = $2, updated_at = now() WHERE invoice_id = $1",
                       invoice_id, at)


async def mark_suspended(conn: Conn, invoice_id: str, at: datetime) -> None:
    await conn.execute("UPDATE dunning_invoices SET suspended_at = COALESCE(suspended_at, $2), updated_at = now()"
                       " WHERE invoice_id = $1", invoice_id, at)


async def mark_retried(conn: Conn, invoice_id: str, attempt: int, at: datetime) -> None:
    await conn.execute("UPDATE dunning_invoices SET retries = GREATEST(retries, $2), last_retry_at = $3,"
                       " updated_at = now() WHERE invoice_id = $1", invoice_id, attempt, at)


async def suspended_invoices(conn: Conn, tenant_id: str) -> list[str]:
    """The invoices dunning suspended this tenant for (paid ones included: the caller checks)."""
    rows = await conn.fetch("SELECT invoice_id FROM dunning_invoices WHERE tenant_id = $1"
                            " AND suspended_at IS NOT NULL ORDER BY invoice_id", tenant_id)
    return [r["invoice_id"] for r in rows]
