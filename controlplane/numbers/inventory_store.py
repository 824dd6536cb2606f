"""SQL of the carrier inventory: load, search, claim (the one-buyer guarantee)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from controlplane.db.connection import Connection
from controlplane.numbers.carrier import InventoryRow

Conn = Connection
_COLS = ("number", "kind", "state", "city", "city_key", "rate_center", "npa", "nxx", "carrier")


async def load(conn: Conn, rows: Iterable[InventoryRow], carrier: str, batch: int = 50_000) -> int:
    """Insert new numbers (existing ones are left as they are); how many were new."""
    added = 0
    chunk: list[tuple[object, ...]] = []

    async def flush() -> int:
        await conn.execute("CREATE TEMP TABLE IF NOT EXISTS inv_load (LIKE number_inventory INCLUDING DEFAULTS)"
                           " ON COMMIT DROP")
        await conn.execute("TRUNCATE inv_load")
        await conn.copy_records_to_table("inv_load", records=chunk, columns=_COLS)
        result = await conn.execute(
            f"INSERT INTO number_inventory ({', '.join(_COLS)}) SELECT {', '.join(_COLS)} FROM inv_load"
            " ON CONFLICT (number) DO NOTHING")
        chunk.clear()
        return int(result.split()[-1])

    for r in rows:
        chunk.append((r.number, r.kind, r.state, r.city, r.city.upper() if r.city else None, r.rate_center,
                      r.npa, r.nxx, carrier))
        if len(chunk) >= batch:
            added += await flush()
    if chunk:
        added += await flush()
    return added


async def search_local(conn: Conn, state: str, npa: str | None, nxx: str | None, rate_center: str | None,
                       city: str | None, limit: int) -> list[asyncpg.Record]:
    # ORDER BY npa, nxx, number: the order of every partial index, so the first
    # rows come straight off the index (a number sorts as its npa, nxx, line).
    where = ["sold_to IS NULL", "kind = 'local'", "state = $1"]
    args: list[object] = [state]
    for column, value in (("npa", npa), ("nxx", nxx), ("rate_center", rate_center), ("city_key", city)):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    args.append(limit)
    return await conn.fetch(
        "SELECT number, kind, state, city, rate_center FROM number_inventory WHERE " + " AND ".join(where)
        + f" ORDER BY npa, nxx, number LIMIT ${len(args)}", *args)


async def search_toll_free(conn: Conn, like: str | None, limit: int) -> list[asyncpg.Record]:
    if like is None:
        return await conn.fetch(
            "SELECT number, kind, state, city, rate_center FROM number_inventory"
            " WHERE sold_to IS NULL AND kind = 'toll_free' ORDER BY number LIMIT $1", limit)
    return await conn.fetch(
        "SELECT number, kind, state, city, rate_center FROM number_inventory"
        " WHERE sold_to IS NULL AND kind = 'toll_free' AND number LIKE $1 ORDER BY number LIMIT $2",
        like, limit)


async def claim(conn: Conn, numbers: Sequence[str], partner_id: str) -> list[asyncpg.Record]:
    """Mark available numbers sold to the partner; the rows actually claimed.

    ``sold_to IS NULL`` under the row lock: of two concurrent buyers, the second
    re-checks after the first commits and claims nothing.
    """
    return await conn.fetch(
        "UPDATE number_inventory SET sold_to = $2, sold_at = now()"
        " WHERE number = ANY($1::text[]) AND sold_to IS NULL"
        " RETURNING number, kind, state, city, rate_center", list(numbers), partner_id)


async def unclaim(conn: Conn, numbers: Sequence[str]) -> None:
    await conn.execute("UPDATE number_inventory SET sold_to = NULL, sold_at = NULL"
                       " WHERE number = ANY($1::text[])", list(numbers))
