"""The SQL of queues (call_queues, call_queue_members, queue_calls; migration 0026)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from controlplane.queues.models import (QueueEvent, QueueEventKind, QueueMember, QueueRow, QueueStats,
                                        QueueView, member_interface, strategy_of)
from controlplane.ring_groups.models import DestinationBody
from provisioning.destinations import Destination, DestinationKind

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


def _key(queue_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(queue_id)
    except ValueError:
        return None


async def _view(conn: Conn, row: asyncpg.Record) -> QueueView:
    members = await conn.fetch("SELECT number, penalty FROM call_queue_members WHERE queue_id = $1"
                               " ORDER BY penalty, number", row["id"])
    kind = row["overflow_kind"]
    return QueueView(id=str(row["id"]), tenant_id=row["tenant_id"], name=row["name"],
                     strategy=strategy_of(row["strategy"]), ring_seconds=row["ring_seconds"],
                     max_wait_seconds=row["max_wait_seconds"], max_callers=row["max_callers"],
                     announce_position=row["announce_position"],
                     members=[QueueMember(number=m["number"], penalty=m["penalty"]) for m in members],
                     overflow=None if kind is None else DestinationBody(kind=DestinationKind(kind),
                                                                         ref=row["overflow_ref"]),
                     created_at=row["created_at"], updated_at=row["updated_at"])


async def save(conn: Conn, q: QueueView, prefix: str, moh_class: str, now: datetime, *, new: bool) -> QueueView:
    """Insert or update the queue and replace its members (one transaction: the caller's)."""
    kind = None if q.overflow is None else q.overflow.kind.value
    ref = "" if q.overflow is None else q.overflow.ref
    args = (uuid.UUID(q.id), q.name, q.strategy.asterisk, q.ring_seconds, q.max_wait_seconds, q.max_callers,
            q.announce_position, moh_class, kind, ref, now)
    if new:
        row = await conn.fetchrow(
            """INSERT INTO call_queues (id, name, strategy, ring_seconds, max_wait_seconds, max_callers,
                   announce_position, moh_class, overflow_kind, overflow_ref, created_at, updated_at, tenant_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12) RETURNING *""", *args, q.tenant_id)
    else:
        row = await conn.fetchrow(
            """UPDATE call_queues SET name = $2, strategy = $3, ring_seconds = $4, max_wait_seconds = $5,
                   max_callers = $6, announce_position = $7, moh_class = $8, overflow_kind = $9,
                   overflow_ref = $10, updated_at = $11 WHERE id = $1 RETURNING *""", *args)
    assert row is not None
    # Members: the ones kept keep their uniqueid (app_queue's realtime key), so a member
    # ringing now is not dropped and re-added.
    numbers = [m.number for m in q.members]
    await conn.execute("DELETE FROM call_queue_members WHERE queue_id = $1 AND NOT (number = ANY($2::text[]))",
                       row["id"], numbers)
    if q.members:
        await conn.executemany(
            """INSERT INTO call_queue_members (queue_id, number, interface, penalty) VALUES ($1, $2, $3, $4)
               ON CONFLICT (queue_id, number) DO UPDATE SET penalty = EXCLUDED.penalty""",
            [(row["id"], m.number, member_interface(prefix, m.number), m.penalty) for m in q.members])
    return await _view(conn, row)


async def get(conn: Conn, tenant_id: str, queue_id: str, *, lock: bool = False) -> QueueView | None:
    key = _key(queue_id)
    if key is None:
        return None
    row = await conn.fetchrow("SELECT * FROM call_queues WHERE id = $1 AND tenant_id = $2"
                              + (" FOR UPDATE" if lock else ""), key, tenant_id)
    return None if row is None else await _view(conn, row)


async def list_for(conn: Conn, tenant_id: str, limit: int = 500) -> list[QueueView]:
    rows = await conn.fetch("SELECT * FROM call_queues WHERE tenant_id = $1 ORDER BY created_at, id LIMIT $2",
                            tenant_id, limit)
    return [await _view(conn, r) for r in rows]


async def delete(conn: Conn, tenant_id: str, queue_id: str) -> bool:
    return bool(await conn.fetchval("DELETE FROM call_queues WHERE id = $1 AND tenant_id = $2 RETURNING true",
                                    uuid.UUID(queue_id), tenant_id))


async def exists(conn: Conn, tenant_id: str, queue_id: str) -> bool:
    key = _key(queue_id)
    return key is not None and bool(await conn.fetchval(
        "SELECT true FROM call_queues WHERE id = $1 AND tenant_id = $2", key, tenant_id))


async def rows_for(conn: Conn, tenant_ids: Sequence[str]) -> list[tuple[str, QueueRow]]:
    rows = await conn.fetch(
        """SELECT q.id, q.tenant_id, q.max_wait_seconds, q.overflow_kind, q.overflow_ref, t.sip_prefix
           FROM call_queues q JOIN tenants t ON t.id = q.tenant_id
           WHERE q.tenant_id = ANY($1::text[]) ORDER BY q.tenant_id, q.created_at, q.id""", list(tenant_ids))
    return [(r["tenant_id"], QueueRow(
        id=str(r["id"]), prefix=r["sip_prefix"], max_wait_seconds=r["max_wait_seconds"],
        overflow=None if r["overflow_kind"] is None else Destination(DestinationKind(r["overflow_kind"]),
                                                                     r["overflow_ref"]))) for r in rows]


# ---------------------------------------------------------------- callers (statistics, events)

async def owner(conn: Conn, queue_id: str) -> tuple[str, str] | None:
    """(tenant id, partner id) of a queue."""
    row = await conn.fetchrow("SELECT q.tenant_id, t.partner_id FROM call_queues q JOIN tenants t"
                              " ON t.id = q.tenant_id WHERE q.id = $1", uuid.UUID(queue_id))
    return None if row is None else (row["tenant_id"], row["partner_id"])


async def apply_event(conn: Conn, tenant_id: str, e: QueueEvent) -> bool:
    """The caller's row after the event; False when the event changed nothing (seen before,
    or it came after the caller had left): no webhook for it."""
    key = uuid.UUID(e.queue_id)
    if e.kind is QueueEventKind.JOINED:
        return bool(await conn.fetchval(
            """INSERT INTO queue_calls (queue_id, uniqueid, tenant_id, caller, joined_at) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT DO NOTHING RETURNING true""", key, e.uniqueid, tenant_id, e.caller, e.at))
    if e.kind is QueueEventKind.ANSWERED:
        return bool(await conn.fetchval(
            """UPDATE queue_calls SET answered_at = $3, answered_by = $4
               WHERE queue_id = $1 AND uniqueid = $2 AND answered_at IS NULL AND abandoned_at IS NULL
               RETURNING true""", key, e.uniqueid, e.at, e.member))
    if e.kind is QueueEventKind.ABANDONED:
        return bool(await conn.fetchval(
            """UPDATE queue_calls SET abandoned_at = $3, left_at = COALESCE(left_at, $3)
               WHERE queue_id = $1 AND uniqueid = $2 AND answered_at IS NULL AND abandoned_at IS NULL
               RETURNING true""", key, e.uniqueid, e.at))
    return bool(await conn.fetchval(
        "UPDATE queue_calls SET left_at = $3 WHERE queue_id = $1 AND uniqueid = $2 AND left_at IS NULL"
        " RETURNING true", key, e.uniqueid, e.at))


async def stats(conn: Conn, queue_id: str, since: datetime) -> QueueStats:
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE left_at IS NULL AND answered_at IS NULL) AS waiting,
                  count(*) FILTER (WHERE answered_at IS NOT NULL) AS answered,
                  count(*) FILTER (WHERE abandoned_at IS NOT NULL) AS abandoned,
                  count(*) FILTER (WHERE left_at IS NOT NULL AND answered_at IS NULL
                                   AND abandoned_at IS NULL) AS other,
                  avg(extract(epoch FROM answered_at - joined_at)) FILTER (WHERE answered_at IS NOT NULL) AS wait
           FROM queue_calls WHERE queue_id = $1 AND joined_at >= $2""", uuid.UUID(queue_id), since)
    assert row is not None
    wait = row["wait"]
    return QueueStats(queue_id=queue_id, since=since, waiting=row["waiting"], answered=row["answered"],
                      abandoned=row["abandoned"], other=row["other"],
                      average_wait_s=None if wait is None else round(float(wait)))
