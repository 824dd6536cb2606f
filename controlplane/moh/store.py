"""The SQL of music on hold (moh_files; migration 0026)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from controlplane.moh.models import MohFile

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


def _file(row: asyncpg.Record) -> MohFile:
    return MohFile(name=row["name"], bytes=row["bytes"], seconds=row["seconds"], created_at=row["created_at"])


async def files(conn: Conn, tenant_id: str) -> list[MohFile]:
    rows = await conn.fetch("SELECT * FROM moh_files WHERE tenant_id = $1 ORDER BY name", tenant_id)
    return [_file(r) for r in rows]


async def count(conn: Conn, tenant_id: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM moh_files WHERE tenant_id = $1", tenant_id))


async def upsert(conn: Conn, tenant_id: str, name: str, entry: str, size: int, seconds: float,
                 now: datetime) -> MohFile:
    row = await conn.fetchrow(
        """INSERT INTO moh_files (tenant_id, name, entry, bytes, seconds, created_at) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (tenant_id, name) DO UPDATE SET entry = EXCLUDED.entry, bytes = EXCLUDED.bytes,
               seconds = EXCLUDED.seconds, created_at = EXCLUDED.created_at RETURNING *""",
        tenant_id, name, entry, size, seconds, now)
    assert row is not None
    return _file(row)


async def delete(conn: Conn, tenant_id: str, name: str) -> bool:
    return bool(await conn.fetchval("DELETE FROM moh_files WHERE tenant_id = $1 AND name = $2 RETURNING true",
                                    tenant_id, name))
