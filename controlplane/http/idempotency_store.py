"""SQL of idempotency records (table idempotency_keys)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import msgspec

RETENTION = "24 hours"
# A first request still "running" after this long died with its process: let a retry run.
IN_FLIGHT_TIMEOUT = "5 minutes"


@dataclass(frozen=True, slots=True)
class Stored:
    request_hash: bytes
    status: int | None
    headers: dict[str, str]
    body: bytes


async def claim(pool: asyncpg.Pool, scope: str, key: str, request_hash: bytes) -> Stored | None:
    """None when this request now owns the key; else the record it collides with."""
    async with pool.acquire() as conn:
        await conn.execute(
            f"DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND (created_at < now() - interval"
            f" '{RETENTION}' OR (status IS NULL AND created_at < now() - interval '{IN_FLIGHT_TIMEOUT}'))",
            scope, key)
        won = await conn.fetchval(
            "INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3)"
            " ON CONFLICT (scope, key) DO NOTHING RETURNING true", scope, key, request_hash)
        if won:
            return None
        row = await conn.fetchrow("SELECT request_hash, status, headers, body FROM idempotency_keys"
                                  " WHERE scope = $1 AND key = $2", scope, key)
    if row is None:  # purged between the two statements: treat as in flight, the caller retries
        return Stored(request_hash, None, {}, b"")
    headers = msgspec.json.decode(row["headers"], type=dict[str, str]) if row["headers"] else {}
    return Stored(bytes(row["request_hash"]), row["status"], headers, bytes(row["body"] or b""))


async def complete(pool: asyncpg.Pool, scope: str, key: str, status: int, headers: dict[str, str],
                   body: bytes) -> None:
    await pool.execute("UPDATE idempotency_keys SET status = $3, headers = $4::jsonb, body = $5"
                       " WHERE scope = $1 AND key = $2",
                       scope, key, status, msgspec.json.encode(headers).decode(), body)


async def release(pool: asyncpg.Pool, scope: str, key: str) -> None:
    await pool.execute("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL",
                       scope, key)


async def purge(pool: asyncpg.Pool) -> int:
    result = await pool.execute(
        f"DELETE FROM idempotency_keys WHERE created_at < now() - interval '{RETENTION}'")
    return int(result.split()[-1])
