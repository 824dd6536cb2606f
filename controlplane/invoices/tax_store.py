"""The SQL of tax jurisdictions and of a tenant's assignment to one."""

from __future__ import annotations

import secrets

import asyncpg

from controlplane.db.connection import Executor
from controlplane.invoices.models import Jurisdiction

_COLUMNS = "id, partner_id, name, code, rate::text AS rate, enabled, created_at, updated_at"


class CodeTaken(ValueError):
    pass


def _from(row: asyncpg.Record) -> Jurisdiction:
    return Jurisdiction(row["id"], row["partner_id"], row["name"], row["code"], row["rate"], row["enabled"],
                        row["created_at"], row["updated_at"])


async def list_all(conn: Executor, partner_id: str) -> list[Jurisdiction]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM tax_jurisdictions WHERE partner_id = $1 ORDER BY code",
                            partner_id)
    return [_from(r) for r in rows]


async def get(conn: Executor, partner_id: str, jurisdiction_id: str) -> Jurisdiction | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM tax_jurisdictions WHERE partner_id = $1 AND id = $2",
                              partner_id, jurisdiction_id)
    return None if row is None else _from(row)


async def create(conn: Executor, partner_id: str, name: str, code: str, rate: str, enabled: bool) -> Jurisdiction:
    try:
        row = await conn.fetchrow(
            f"INSERT INTO tax_jurisdictions (id, partner_id, name, code, rate, enabled)"
            f" VALUES ($1, $2, $3, $4, $5::numeric, $6) RETURNING {_COLUMNS}",
            f"tax_{secrets.token_hex(8)}", partner_id, name, code, rate, enabled)
    except asyncpg.UniqueViolationError:
        raise CodeTaken(code) from None
    assert row is not None
    return _from(row)


async def update(conn: Executor, partner_id: str, jurisdiction_id: str, name: str, code: str, rate: str,
                 enabled: bool) -> Jurisdiction | None:
    try:
        row = await conn.fetchrow(
            f"UPDATE tax_jurisdictions SET name = $3, code = $4, rate = $5::numeric, enabled = $6, updated_at = now()"
            f" WHERE partner_id = $1 AND id = $2 RETURNING {_COLUMNS}",
            partner_id, jurisdiction_id, name, code, rate, enabled)
    except asyncpg.UniqueViolationError:
        raise CodeTaken(code) from None
    return None if row is None else _from(row)


async def delete(conn: Executor, partner_id: str, jurisdiction_id: str) -> bool:
    """Tenants assigned to it lose their assignment (issued invoices keep their copied tax)."""
    done = await conn.fetchval("DELETE FROM tax_jurisdictions WHERE partner_id = $1 AND id = $2 RETURNING 1",
                               partner_id, jurisdiction_id)
    return done is not None


async def tenant_of(conn: Executor, tenant_id: str) -> Jurisdiction | None:
    row = await conn.fetchrow(
        f"SELECT {', '.join('j.' + c.strip() for c in _COLUMNS.split(','))} FROM tenant_tax t"
        f" JOIN tax_jurisdictions j ON j.id = t.jurisdiction_id WHERE t.tenant_id = $1", tenant_id)
    return None if row is None else _from(row)


async def assign(conn: Executor, tenant_id: str, jurisdiction_id: str | None) -> None:
    if jurisdiction_id is None:
        await conn.execute("DELETE FROM tenant_tax WHERE tenant_id = $1", tenant_id)
        return
    await conn.execute("INSERT INTO tenant_tax (tenant_id, jurisdiction_id) VALUES ($1, $2) ON CONFLICT (tenant_id)"
                       " DO UPDATE SET jurisdiction_id = EXCLUDED.jurisdiction_id, updated_at = now()",
                       tenant_id, jurisdiction_id)


async def tenant_partner(conn: Executor, tenant_id: str) -> tuple[str, str] | None:
    """(partner id, status) of a tenant."""
    row = await conn.fetchrow("SELECT partner_id, status FROM tenants WHERE id = $1", tenant_id)
    return None if row is None else (row["partner_id"], row["status"])
