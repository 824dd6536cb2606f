"""SQL of failover records (controlplane.calls.failover): the in-progress calls of nodes whose
heartbeat lease (``leases`` row ``node:<id>``, controlplane.db.lease) has expired."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from controlplane.db.connection import Connection

Conn = Connection


async def dead_nodes(conn: Conn, this_node: str) -> list[tuple[str, datetime]]:
    """Nodes (other than ``this_node``) whose heartbeat expired while calls were up on them,
    with the detected time of death (the heartbeat's expiry)."""
    rows = await conn.fetch(
        """SELECT substr(l.name, 6) AS node_id, l.expires_at FROM leases l
           WHERE l.name LIKE 'node:%' AND l.expires_at < now() AND substr(l.name, 6) <> $1
             AND EXISTS (SELECT 1 FROM calls_active a WHERE a.node_id = substr(l.name, 6))""", this_node)
    return [(r["node_id"], r["expires_at"]) for r in rows]


async def calls_of(conn: Conn, node_id: str, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM calls_active WHERE node_id = $1 ORDER BY started_at LIMIT $2",
                            node_id, limit)


async def still_dead(conn: Conn, node_id: str) -> bool:
    """In the recording transaction: the node's heartbeat is still expired, and its row stays
    locked until commit, so a node coming back cannot renew (and pick its calls up) meanwhile."""
    return bool(await conn.fetchval(
        "SELECT true FROM leases WHERE name = $1 AND expires_at < now() FOR UPDATE", f"node:{node_id}"))


async def as_node(conn: Conn, node_id: str) -> None:
    """For the rest of the transaction, rows default to ``node_id``'s (migration 0029): the
    record of a dead node's call names the node that carried it, not the one recording it."""
    await conn.execute("SELECT set_config('controlplane.node_id', $1, true)", node_id)


async def flag(conn: Conn, linkedid: str, node_id: str, died_at: datetime, recorded_by: str) -> None:
    await conn.execute(
        "INSERT INTO failover_records (linkedid, node_id, died_at, recorded_by) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (linkedid) DO NOTHING", linkedid, node_id, died_at, recorded_by)


async def drop_active(conn: Conn, linkedid: str) -> None:
    await conn.execute("DELETE FROM calls_active WHERE linkedid = $1", linkedid)


async def live_elsewhere(conn: Conn, this_node: str, linkedids: Sequence[str]) -> set[str]:
    """Calls up on another node whose heartbeat is alive: that node's daemon records them."""
    rows = await conn.fetch(
        """SELECT a.linkedid FROM calls_active a JOIN leases l ON l.name = 'node:' || a.node_id
           WHERE a.linkedid = ANY($1::text[]) AND a.node_id <> $2 AND l.expires_at >= now()""",
        list(linkedids), this_node)
    return {r["linkedid"] for r in rows}
