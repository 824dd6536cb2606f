"""SQL for partners, tenants and tenant defaults. Every function takes the
connection of the caller's transaction, so services decide the boundaries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from controlplane.db.connection import Connection
from controlplane.tenants.models import Partner, Tier, Tenant, TenantDefaults, TenantStatus
from controlplane.shared.pagination import PageRequest, keyset

Conn = Connection
PURGE_DAYS = 90


@dataclass
class Query:
    """A WHERE clause built from optional filters, with numbered parameters."""

    where: list[str] = field(default_factory=list)
    args: list[object] = field(default_factory=list)

    def add(self, clause: str, *values: object) -> None:
        for value in values:
            self.args.append(value)
            clause = clause.replace("?", f"${len(self.args)}", 1)
        self.where.append(clause)

    def page(self, page: PageRequest, alias: str = "") -> str:
        after, order = keyset(page, alias, self.args)
        where = " AND ".join([*self.where, after] if after else self.where) or "true"
        return f"WHERE {where} {order}"


def like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# ---------------------------------------------------------------- partners

_PARTNER = """
SELECT p.*, (SELECT count(*) FROM extensions e JOIN tenants t ON t.id = e.tenant_id
             WHERE t.partner_id = p.id AND t.status <> 'CANCELLED') AS extension_count
FROM partners p
"""


def partner_from(r: asyncpg.Record, max_extensions: int | None) -> Partner:
    return Partner(id=r["id"], name=r["name"], tier=Tier(r["tier"]),
                   extension_count=r["extension_count"], max_extensions=max_extensions,
                   created_at=r["created_at"], updated_at=r["updated_at"])


async def insert_partner(conn: Conn, partner_id: str, name: str, tier: Tier) -> None:
    await conn.execute("INSERT INTO partners (id, name, tier, created_at, updated_at) "
                       "VALUES ($1, $2, $3, clock_timestamp(), clock_timestamp())", partner_id, name, tier.value)


async def partner_record(conn: Conn, partner_id: str, *, lock: bool = False) -> asyncpg.Record | None:
    if lock:
        # Serialises extension creation per partner, so the tier cap cannot be raced.
        await conn.execute("SELECT 1 FROM partners WHERE id = $1 FOR UPDATE", partner_id)
    return await conn.fetchrow(_PARTNER + " WHERE p.id = $1", partner_id)


async def list_partners(conn: Conn, page: PageRequest, tier: str | None) -> list[asyncpg.Record]:
    q = Query()
    if tier:
        q.add("p.tier = ?", tier)
    return await conn.fetch(_PARTNER + q.page(page, "p."), *q.args)


async def update_partner(conn: Conn, partner_id: str, name: str, tier: Tier) -> None:
    await conn.execute("UPDATE partners SET name = $2, tier = $3, updated_at = now() WHERE id = $1",
                       partner_id, name, tier.value)


async def partner_has_children(conn: Conn, partner_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM tenants WHERE partner_id = $1)"
        " OR EXISTS (SELECT 1 FROM dids WHERE partner_id = $1)", partner_id))


async def delete_partner(conn: Conn, partner_id: str) -> None:
    await conn.execute("DELETE FROM partners WHERE id = $1", partner_id)


# ---------------------------------------------------------------- tenants

_TENANT = """
SELECT t.*,
       (SELECT count(*) FROM extensions e WHERE e.tenant_id = t.id) AS extension_count,
       (SELECT count(*) FROM dids d WHERE d.tenant_id = t.id) AS did_count
FROM tenants t
"""


def tenant_from(r: asyncpg.Record) -> Tenant:
    cancelled = r["cancelled_at"]
    return Tenant(id=r["id"], partner_id=r["partner_id"], name=r["name"], sip_prefix=r["sip_prefix"],
                  billing_email=r["billing_email"], default_cnam=r["default_cnam"], timezone=r["timezone"],
                  status=TenantStatus(r["status"]), extension_count=r["extension_count"],
                  did_count=r["did_count"], cancelled_at=cancelled,
                  purge_after=cancelled + timedelta(days=PURGE_DAYS) if cancelled else None,
                  created_at=r["created_at"], updated_at=r["updated_at"])


async def prefix_taken(conn: Conn, prefixes: Sequence[str]) -> set[str]:
    rows = await conn.fetch("SELECT sip_prefix FROM tenants WHERE sip_prefix = ANY($1::text[])", list(prefixes))
    return {r["sip_prefix"] for r in rows}


async def insert_tenant(conn: Conn, tenant: Tenant) -> None:
    await conn.execute(
        "INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, default_cnam, timezone,"
        " status, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8, clock_timestamp(), clock_timestamp())",
        tenant.id, tenant.partner_id, tenant.name, tenant.sip_prefix, tenant.billing_email,
        tenant.default_cnam, tenant.timezone, tenant.status.value)


async def get_tenant(conn: Conn, partner_id: str, tenant_id: str, *, lock: bool = False) -> Tenant | None:
    if lock:
        await conn.execute("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
    row = await conn.fetchrow(_TENANT + " WHERE t.id = $1 AND t.partner_id = $2", tenant_id, partner_id)
    return tenant_from(row) if row else None


async def list_tenants(conn: Conn, partner_id: str, page: PageRequest, status: str | None,
                       search: str | None, tenant_ids: frozenset[str] | None = None) -> list[Tenant]:
    q = Query()
    q.add("t.partner_id = ?", partner_id)
    if tenant_ids is not None:
        q.add("t.id = ANY(?::text[])", sorted(tenant_ids))
    if status:
        q.add("t.status = ?", status)
    if search:
        q.add("(t.name ILIKE ? OR t.billing_email ILIKE ?)", like(search), like(search))
    return [tenant_from(r) for r in await conn.fetch(_TENANT + q.page(page, "t."), *q.args)]


async def update_tenant(conn: Conn, tenant: Tenant, cancelled_at: datetime | None) -> None:
    await conn.execute(
        "UPDATE tenants SET name=$2, billing_email=$3, default_cnam=$4, timezone=$5, status=$6,"
        " cancelled_at=$7, updated_at=now() WHERE id=$1",
        tenant.id, tenant.name, tenant.billing_email, tenant.default_cnam, tenant.timezone,
        tenant.status.value, cancelled_at)


async def set_suspension_cause(conn: Conn, tenant_id: str, cause: str | None) -> None:
    """Why the tenant is SUSPENDED ('manual', 'usage_cap:<cap>', 'dunning:<invoice id>'); None otherwise."""
    await conn.execute("UPDATE tenants SET suspension_cause = $2 WHERE id = $1", tenant_id, cause)


async def suspension_cause(conn: Conn, tenant_id: str) -> str | None:
    cause: str | None = await conn.fetchval("SELECT suspension_cause FROM tenants WHERE id = $1", tenant_id)
    return cause


async def suspended_for(conn: Conn, cause_prefix: str) -> list[tuple[str, str, str]]:
    """(partner id, tenant id, cause) of every SUSPENDED tenant whose stored cause starts with ``cause_prefix``."""
    rows = await conn.fetch("SELECT partner_id, id, suspension_cause FROM tenants WHERE status = 'SUSPENDED'"
                            " AND starts_with(suspension_cause, $1) ORDER BY id", cause_prefix)
    return [(r["partner_id"], r["id"], r["suspension_cause"]) for r in rows]


async def purge_expired(conn: Conn) -> list[str]:
    """Delete tenants cancelled more than 90 days ago (extensions cascade)."""
    rows = await conn.fetch(
        f"SELECT id FROM tenants WHERE status = 'CANCELLED' AND cancelled_at < now() - interval '{PURGE_DAYS} days'"
        " FOR UPDATE SKIP LOCKED")
    ids = [r["id"] for r in rows]
    if ids:
        await conn.execute("UPDATE dids SET tenant_id = NULL, extension_id = NULL, released_from_tenant = NULL,"
                           " released_extension = NULL WHERE tenant_id = ANY($1::text[])"
                           " OR released_from_tenant = ANY($1::text[])", ids)
        await conn.execute("DELETE FROM tenants WHERE id = ANY($1::text[])", ids)
    return ids


# ---------------------------------------------------------------- tenant defaults

async def get_defaults(conn: Conn, partner_id: str) -> TenantDefaults:
    row = await conn.fetchrow("SELECT timezone, default_cnam, billing_profile_id FROM tenant_defaults"
                              " WHERE partner_id = $1", partner_id)
    return TenantDefaults(timezone=row["timezone"], default_cnam=row["default_cnam"],
                          billing_profile_id=row["billing_profile_id"]) if row else TenantDefaults()


async def put_defaults(conn: Conn, partner_id: str, defaults: TenantDefaults) -> None:
    await conn.execute(
        "INSERT INTO tenant_defaults (partner_id, timezone, default_cnam, billing_profile_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (partner_id) DO UPDATE SET timezone = $2, default_cnam = $3, billing_profile_id = $4,"
        " updated_at = now()", partner_id, defaults.timezone, defaults.default_cnam, defaults.billing_profile_id)
