"""SQL for extensions."""

from __future__ import annotations

import asyncpg

from controlplane.tenants.models import Extension
from controlplane.shared.pagination import PageRequest
from controlplane.tenants.store import Conn, Query, like
from provisioning.names import endpoint_name


def extension_from(r: asyncpg.Record) -> Extension:
    return Extension(id=r["id"], tenant_id=r["tenant_id"], number=r["number"], display_name=r["display_name"],
                     voicemail_enabled=r["voicemail_enabled"],
                     sip_username=endpoint_name(r["sip_prefix"], r["number"]),
                     created_at=r["created_at"], updated_at=r["updated_at"])


_SELECT = "SELECT e.*, t.sip_prefix FROM extensions e JOIN tenants t ON t.id = e.tenant_id "


async def insert(conn: Conn, ext_id: str, tenant_id: str, number: str, display_name: str,
                 sip_ha1: str, voicemail: bool) -> bool:
    """False when the number is already used in the tenant."""
    row = await conn.fetchrow(
        "INSERT INTO extensions (id, tenant_id, number, display_name, sip_ha1, voicemail_enabled, created_at,"
        " updated_at) VALUES ($1,$2,$3,$4,$5,$6, clock_timestamp(), clock_timestamp())"
        " ON CONFLICT (tenant_id, number) DO NOTHING RETURNING id",
        ext_id, tenant_id, number, display_name, sip_ha1, voicemail)
    return row is not None


async def get(conn: Conn, tenant_id: str, ext_id: str) -> Extension | None:
    row = await conn.fetchrow(_SELECT + "WHERE e.id = $1 AND e.tenant_id = $2", ext_id, tenant_id)
    return extension_from(row) if row else None


async def list_page(conn: Conn, tenant_id: str, page: PageRequest, search: str | None) -> list[Extension]:
    q = Query()
    q.add("e.tenant_id = ?", tenant_id)
    if search:
        q.add("(e.number LIKE ? OR e.display_name ILIKE ?)", like(search), like(search))
    return [extension_from(r) for r in await conn.fetch(_SELECT + q.page(page, "e."), *q.args)]


async def update(conn: Conn, ext_id: str, display_name: str, voicemail: bool) -> None:
    await conn.execute("UPDATE extensions SET display_name=$2, voicemail_enabled=$3, updated_at=now()"
                       " WHERE id=$1", ext_id, display_name, voicemail)


async def set_ha1(conn: Conn, ext_id: str, sip_ha1: str) -> None:
    await conn.execute("UPDATE extensions SET sip_ha1=$2, updated_at=now() WHERE id=$1", ext_id, sip_ha1)


async def delete(conn: Conn, ext_id: str) -> None:
    await conn.execute("DELETE FROM extensions WHERE id = $1", ext_id)
