"""SQL of partner users and of the setup checklist's facts."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from controlplane.db.connection import Executor
from controlplane.payments import store as payments_store
from controlplane.shared.actor import TeamRole
from controlplane.shared.pagination import PageRequest, keyset
from controlplane.team.checklist import Facts
from controlplane.team.invitation import expired
from controlplane.team.models import TeamUser, UserStatus

Conn = Executor


def user_from(r: asyncpg.Record, now: datetime) -> TeamUser:
    status = UserStatus(r["status"])
    return TeamUser(
        id=r["id"], partner_id=r["partner_id"], email=r["email"], name=r["name"], role=TeamRole(r["role"]),
        status=status, email_verified=r["accepted_at"] is not None, invited_at=r["invited_at"],
        invitation_expires_at=r["invitation_expires_at"],
        invitation_expired=status is UserStatus.INVITED and expired(r["invitation_expires_at"], now),
        accepted_at=r["accepted_at"], removed_at=r["removed_at"], last_seen_at=r["last_seen_at"],
        created_at=r["created_at"], updated_at=r["updated_at"])


async def insert(conn: Conn, *, user_id: str, partner_id: str, email: str, name: str, role: TeamRole,
                 status: UserStatus, token_hash: bytes | None, invited_by: str | None, now: datetime,
                 expires_at: datetime | None) -> None:
    """Raises asyncpg.UniqueViolationError when the address is already a live user of the partner."""
    invited = now if token_hash is not None else None
    await conn.execute(
        "INSERT INTO partner_users (id, partner_id, email, name, role, status, invitation_token_hash, invited_by,"
        " invited_at, invitation_expires_at, accepted_at, created_at, updated_at)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$12)",
        user_id, partner_id, email, name, role.value, status.value, token_hash, invited_by, invited, expires_at,
        now if status is UserStatus.ACTIVE else None, now)


async def get(conn: Conn, partner_id: str, user_id: str, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM partner_users WHERE id = $1 AND partner_id = $2"
                               + (" FOR UPDATE" if lock else ""), user_id, partner_id)


async def by_token(conn: Conn, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM partner_users WHERE invitation_token_hash = $1 FOR UPDATE",
                               token_hash)


async def list_page(conn: Conn, partner_id: str, page: PageRequest, status: UserStatus | None,
                    now: datetime) -> list[TeamUser]:
    args: list[object] = [partner_id]
    where = ["partner_id = $1"]
    if status is not None:
        args.append(status.value)
        where.append(f"status = ${len(args)}")
    after, order = keyset(page, "", args)
    if after:
        where.append(after)
    rows = await conn.fetch(f"SELECT * FROM partner_users WHERE {' AND '.join(where)} {order}", *args)
    return [user_from(r, now) for r in rows]


async def reinvite(conn: Conn, user_id: str, token_hash: bytes, now: datetime, expires_at: datetime) -> None:
    await conn.execute(
        "UPDATE partner_users SET invitation_token_hash = $2, invited_at = $3, invitation_expires_at = $4,"
        " updated_at = $3 WHERE id = $1", user_id, token_hash, now, expires_at)


async def accept(conn: Conn, user_id: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE partner_users SET status = 'ACTIVE', accepted_at = $2,"
        " updated_at = $2 WHERE id = $1", user_id, now)


async def remove(conn: Conn, user_id: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE partner_users SET status = 'REMOVED', removed_at = $2,"
        " updated_at = $2 WHERE id = $1", user_id, now)


async def active_role(conn: Conn, partner_id: str, user_id: str) -> str | None:
    value = await conn.fetchval("SELECT role FROM partner_users WHERE id = $1 AND partner_id = $2"
                                " AND status = 'ACTIVE'", user_id, partner_id)
    return None if value is None else str(value)


async def active_admins(conn: Conn, partner_id: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM partner_users WHERE partner_id = $1"
                                   " AND status = 'ACTIVE' AND role = 'PARTNER_ADMIN'", partner_id))


async def touch(conn: Conn, user_id: str) -> None:
    await conn.execute("UPDATE partner_users SET last_seen_at = now() WHERE id = $1", user_id)


async def partner_exists(conn: Conn, partner_id: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM partners WHERE id = $1)", partner_id))


# Each EXISTS stops at its first row. Tables of other capabilities are read here (never
# written): tenants, brand (0014), DIDs and billing profiles; the card through payments' store.
_FACTS = """
SELECT
  EXISTS (SELECT 1 FROM tenants WHERE partner_id = $1) AS has_tenant,
  EXISTS (SELECT 1 FROM partner_brand WHERE partner_id = $1
          AND (brand_name IS NOT NULL OR primary_color IS NOT NULL))
    OR EXISTS (SELECT 1 FROM partner_logos WHERE partner_id = $1) AS branding_set,
  EXISTS (SELECT 1 FROM dids WHERE partner_id = $1 AND status <> 'RELEASED') AS has_number,
  EXISTS (SELECT 1 FROM billing_profiles b WHERE b.partner_id = $1 AND b.deleted_at IS NULL
          AND (b.builtin IS NULL OR b.updated_at > b.created_at))
    OR EXISTS (SELECT 1 FROM tenant_rate_overrides o JOIN tenants t ON t.id = o.tenant_id
               WHERE t.partner_id = $1) AS has_billing_profile,
  EXISTS (SELECT 1 FROM partner_users WHERE partner_id = $1 AND invited_at IS NOT NULL) AS invited_member
"""


async def facts(conn: Conn, partner_id: str) -> Facts:
    row = await conn.fetchrow(_FACTS, partner_id)
    assert row is not None
    # "Configure Billing": a default card on file. Seed 003 means Stripe Connect (the partner
    # charging its tenants), which is a later issue; the card is the billing set up today.
    card = await payments_store.default_method(conn, partner_id)
    return Facts(billing_configured=card is not None, **{name: bool(row[name]) for name in row.keys()})
