"""SQL of API keys."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from controlplane.db.connection import Executor
from controlplane.apikeys.models import ApiKey, KeyStatus, mask
from controlplane.shared.pagination import PageRequest, keyset

Conn = Executor

# Status as the database sees it, for filtering lists.
_STATUS_SQL = {
    KeyStatus.REVOKED: "revoked_at IS NOT NULL",
    KeyStatus.EXPIRED: "revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= now()",
    KeyStatus.ACTIVE: "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
}


def status_of(r: asyncpg.Record, now: datetime | None = None) -> KeyStatus:
    if r["revoked_at"] is not None:
        return KeyStatus.REVOKED
    expires = r["expires_at"]
    if expires is not None and expires <= (now or datetime.now(UTC)):
        return KeyStatus.EXPIRED
    return KeyStatus.ACTIVE


def key_from(r: asyncpg.Record) -> ApiKey:
    return ApiKey(id=r["id"], partner_id=r["partner_id"], name=r["name"], masked_key=mask(r["last4"]),
                  scopes=list(r["scopes"]), tenant_ids=None if r["tenant_ids"] is None else list(r["tenant_ids"]),
                  rate_limit=r["rate_limit"], status=status_of(r), expires_at=r["expires_at"],
                  last_used_at=r["last_used_at"], revoked_at=r["revoked_at"], created_at=r["created_at"],
                  updated_at=r["updated_at"])


async def insert(conn: Conn, key_id: str, partner_id: str, name: str, secret_hash: bytes, last4: str,
                 scopes: list[str], tenant_ids: list[str] | None, rate_limit: int,
                 expires_at: datetime | None) -> None:
    await conn.execute(
        "INSERT INTO api_keys (id, partner_id, name, secret_hash, last4, scopes, tenant_ids, rate_limit,"
        " expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
        key_id, partner_id, name, secret_hash, last4, scopes, tenant_ids, rate_limit, expires_at)


async def get(conn: Conn, partner_id: str, key_id: str, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1 AND partner_id = $2"
                               + (" FOR UPDATE" if lock else ""), key_id, partner_id)


async def by_hash(conn: Conn, secret_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, partner_id, scopes, tenant_ids, rate_limit, revoked_at, expires_at FROM api_keys"
        " WHERE secret_hash = $1", secret_hash)


async def list_page(conn: Conn, partner_id: str, page: PageRequest, status: KeyStatus | None) -> list[ApiKey]:
    args: list[object] = [partner_id]
    where = ["partner_id = $1"]
    if status is not None:
        where.append(_STATUS_SQL[status])
    after, order = keyset(page, "", args)
    if after:
        where.append(after)
    rows = await conn.fetch(f"SELECT * FROM api_keys WHERE {' AND '.join(where)} {order}", *args)
    return [key_from(r) for r in rows]


async def update(conn: Conn, key_id: str, scopes: list[str], tenant_ids: list[str] | None,
                 rate_limit: int) -> None:
    await conn.execute("UPDATE api_keys SET scopes = $2, tenant_ids = $3, rate_limit = $4,"
                       " updated_at = clock_timestamp() WHERE id = $1", key_id, scopes, tenant_ids, rate_limit)


async def revoke(conn: Conn, key_id: str) -> None:
    await conn.execute("UPDATE api_keys SET revoked_at = clock_timestamp(), updated_at = clock_timestamp()"
                       " WHERE id = $1 AND revoked_at IS NULL", key_id)


async def delete(conn: Conn, key_id: str) -> None:
    await conn.execute("DELETE FROM api_keys WHERE id = $1", key_id)


async def touch(conn: Conn, key_id: str) -> None:
    await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE id = $1", key_id)


async def partner_exists(conn: Conn, partner_id: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM partners WHERE id = $1)", partner_id))


async def known_tenants(conn: Conn, partner_id: str, tenant_ids: list[str]) -> set[str]:
    rows = await conn.fetch("SELECT id FROM tenants WHERE partner_id = $1 AND id = ANY($2::text[])",
                            partner_id, tenant_ids)
    return {r["id"] for r in rows}
