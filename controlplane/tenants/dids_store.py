"""SQL for DIDs (the partner's inventory and their assignment to tenants)."""

from __future__ import annotations

import asyncpg

from controlplane.tenants.models import Did, DidStatus
from controlplane.shared.pagination import PageRequest
from controlplane.tenants.store import Conn, Query, like


def did_from(r: asyncpg.Record) -> Did:
    return Did(id=r["id"], partner_id=r["partner_id"], number=r["number"], tenant_id=r["tenant_id"],
               extension_id=r["extension_id"], status=DidStatus(r["status"]), cnam=r["cnam"],
               created_at=r["created_at"], updated_at=r["updated_at"])


async def get(conn: Conn, partner_id: str, did_id: str, *, lock: bool = False) -> Did | None:
    sql = "SELECT * FROM dids WHERE id = $1 AND partner_id = $2" + (" FOR UPDATE" if lock else "")
    row = await conn.fetchrow(sql, did_id, partner_id)
    return did_from(row) if row else None


async def list_page(conn: Conn, partner_id: str, page: PageRequest, tenant_id: str | None,
                    status: str | None, assigned: bool | None, search: str | None,
                    tenant_ids: frozenset[str] | None = None) -> list[Did]:
    q = Query()
    q.add("partner_id = ?", partner_id)
    if tenant_ids is not None:
        q.add("tenant_id = ANY(?::text[])", sorted(tenant_ids))
    if tenant_id:
        q.add("tenant_id = ?", tenant_id)
    if status:
        q.add("status = ?", status)
    if assigned is not None:
        q.where.append("tenant_id IS NOT NULL" if assigned else "tenant_id IS NULL")
    if search:
        q.add("number LIKE ?", like(search))
    return [did_from(r) for r in await conn.fetch("SELECT * FROM dids " + q.page(page), *q.args)]


async def delete(conn: Conn, did_id: str) -> None:
    await conn.execute("DELETE FROM dids WHERE id = $1", did_id)


async def count_assigned(conn: Conn, tenant_id: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM dids WHERE tenant_id = $1", tenant_id))


async def release_for_tenant(conn: Conn, tenant_id: str) -> int:
    """Cancellation: the tenant's DIDs go back to the inventory as RELEASED."""
    result = await conn.execute(
        "UPDATE dids SET released_from_tenant = tenant_id, released_extension = extension_id,"
        " tenant_id = NULL, extension_id = NULL, status = 'RELEASED', updated_at = now()"
        " WHERE tenant_id = $1", tenant_id)
    return int(result.split()[-1])


async def restore_for_tenant(conn: Conn, tenant_id: str) -> int:
    """Reactivation: DIDs still RELEASED from this tenant come back (reassigned ones do not)."""
    result = await conn.execute(
        "UPDATE dids SET tenant_id = released_from_tenant, extension_id = released_extension,"
        " released_from_tenant = NULL, released_extension = NULL, status = 'ACTIVE', updated_at = now()"
        " WHERE released_from_tenant = $1 AND tenant_id IS NULL AND status = 'RELEASED'", tenant_id)
    return int(result.split()[-1])
