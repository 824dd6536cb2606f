"""SQL of the lane (controlplane/webhooks/lane.py): a batch's deliveries, their rows written with
their first outcome, what goes to the row path instead, the cursor and the recovery after it.

Only the dispatcher (the worker holding ``DISPATCH_LOCK``) runs these, except ``record``,
which the pump runs for the lane's attempts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from controlplane.db.connection import Connection
from controlplane.events.store import Sequenced
from controlplane.webhooks import delivery_store
from controlplane.webhooks.models import DeliveryStatus, Job, Outcome

DISPATCH_LOCK = 0x6370_6478  # "cpdx": a session advisory lock, held by the one dispatcher
CURSOR = "lane"


def _subscribed(event: str) -> str:
    """The join of an event (the row alias ``event``, with partner_id and type) to the endpoints
    owed a delivery of it: its partner's, enabled, subscribed to its type."""
    return (f"JOIN webhook_endpoints w ON w.partner_id = {event}.partner_id AND w.enabled AND w.deleted_at IS NULL"
            f" AND ('*' = ANY(w.event_types) OR {event}.type = ANY(w.event_types))")


@dataclass(frozen=True)
class Batch:
    lane: list[Job]    # first attempts the lane makes
    stored: list[Job]  # their group still has a stored delivery waiting for its first attempt


async def targets(conn: Connection, events: Sequence[Sequenced], max_attempts: int,
                  offset: timedelta) -> Batch:
    """One delivery per (event, enabled endpoint of its partner subscribed to its type)."""
    if not events:
        return Batch([], [])
    rows = await conn.fetch(
        f"""SELECT s.seq, s.position, s.order_key, w.id AS endpoint_id, w.url, w.secret_enc, e.id AS event_id,
                  e.type, e.body, now() + $6::interval AS t,
                  EXISTS (SELECT FROM webhook_deliveries h
                          WHERE h.endpoint_id = w.id AND h.order_key = s.order_key
                            AND h.status = 'PENDING' AND NOT h.manual) AS waiting
           FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[])
                AS s(seq, position, type, partner_id, order_key)
           {_subscribed("s")}
           JOIN events e ON e.seq = s.seq
           ORDER BY s.position, w.id""",
        [e.seq for e in events], [e.position for e in events], [e.type for e in events],
        [e.partner_id for e in events], [e.tenant_id or "" for e in events], offset)
    batch = Batch([], [])
    for r in rows:
        job = Job(delivery_id=None, endpoint_id=r["endpoint_id"], event_id=r["event_id"], event_type=r["type"],
                  body=r["body"], url=r["url"], secret_enc=r["secret_enc"], attempts=0,
                  max_attempts=max_attempts, claimed_at=r["t"], order_key=r["order_key"],
                  event_seq=r["seq"], position=r["position"])
        (batch.stored if r["waiting"] else batch.lane).append(job)
    return batch


async def store_pending(conn: Connection, jobs: Sequence[Job], offset: timedelta) -> None:
    """Hand deliveries to the row path: PENDING rows, each group's head made ready (DEAD for an
    endpoint deleted meanwhile, as ``delivery_store.abandon`` left the others). In a transaction."""
    if not jobs:
        return
    await conn.execute(
        """INSERT INTO webhook_deliveries (endpoint_id, event_seq, position, order_key, max_attempts, due_at,
                                           status, error)
           SELECT r.endpoint_id, r.seq, r.position, r.order_key, r.max_attempts, now() + $6::interval,
                  CASE WHEN w.deleted_at IS NULL THEN 'PENDING' ELSE 'DEAD' END,
                  CASE WHEN w.deleted_at IS NOT NULL THEN 'endpoint deleted' END
           FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::int[])
                AS r(endpoint_id, seq, position, order_key, max_attempts)
           JOIN webhook_endpoints w ON w.id = r.endpoint_id""",
        [j.endpoint_id for j in jobs], [j.event_seq for j in jobs], [j.position for j in jobs],
        [j.order_key for j in jobs], [j.max_attempts for j in jobs], offset)
    await delivery_store.promote(conn, {(j.endpoint_id, j.order_key) for j in jobs})


async def record(conn: Connection, outcomes: Sequence[tuple[Outcome, DeliveryStatus, float]],
                 offset: timedelta, cursor: int | None) -> bool:
    """Write the lane's attempts as rows (its first attempt each) and move the cursor to
    ``cursor`` (None: it stays), in one statement. Whether an endpoint of theirs had a failure
    counter above 0 (as ``delivery_store.record`` says)."""
    if not outcomes:
        return False
    jobs = [o.job for o, _, _ in outcomes]
    counting = await conn.fetchval(
        """WITH c AS (SELECT now() + $14::interval AS t),
           written AS (  -- a data-modifying WITH runs whether or not it is read
               INSERT INTO webhook_deliveries (endpoint_id, event_seq, position, order_key, max_attempts, status,
                                               ready, attempts, due_at, last_attempt_at, response_status, error,
                                               response_body, response_truncated, delivered_at)
               SELECT r.endpoint_id, r.seq, r.position, r.order_key, r.max_attempts, r.status,
                      r.status = 'FAILED', 1,
                      CASE WHEN r.status = 'FAILED' THEN c.t + make_interval(secs => r.delay) ELSE c.t END,
                      r.at, r.code, r.error, r.body, r.truncated, CASE WHEN r.status = 'DELIVERED' THEN c.t END
               FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::int[], $6::text[],
                           $7::float8[], $8::timestamptz[], $9::int[], $10::text[], $11::bytea[], $12::bool[])
                    AS r(endpoint_id, seq, position, order_key, max_attempts, status, delay, at, code, error, body,
                         truncated), c),
           moved AS (UPDATE webhook_cursor SET position = $15 WHERE name = $16 AND position < $15)
           SELECT EXISTS (SELECT FROM webhook_endpoints w
                          WHERE w.id = ANY($13::text[]) AND w.consecutive_failures <> 0)""",
        [j.endpoint_id for j in jobs], [j.event_seq for j in jobs], [j.position for j in jobs],
        [j.order_key for j in jobs], [j.max_attempts for j in jobs], [s.value for _, s, _ in outcomes],
        [d for _, _, d in outcomes], [o.attempted_at for o, _, _ in outcomes],
        [o.response_status for o, _, _ in outcomes], [o.error for o, _, _ in outcomes],
        [o.response_body for o, _, _ in outcomes], [o.response_truncated for o, _, _ in outcomes],
        sorted({j.endpoint_id for j in jobs}), offset, cursor, CURSOR)
    return bool(counting)


async def advance(conn: Connection, position: int) -> None:
    """Move the cursor up to ``position`` (never down)."""
    await conn.execute("UPDATE webhook_cursor SET position = $2 WHERE name = $1 AND position < $2",
                       CURSOR, position)


async def recover(conn: Connection, max_attempts: int, offset: timedelta) -> int:
    """Store, for the row path, every delivery of the events after the cursor that has no row
    (what a dead dispatcher's lane held: sent or not, at least once); the cursor then moves to
    the last sequenced event. In a transaction; returns that position."""
    cursor = await conn.fetchval("SELECT position FROM webhook_cursor WHERE name = $1 FOR UPDATE", CURSOR)
    rows = await conn.fetch(
        f"""INSERT INTO webhook_deliveries (endpoint_id, event_seq, position, order_key, max_attempts, due_at)
           SELECT w.id, e.seq, e.position, coalesce(e.tenant_id, ''), $2, now() + $3::interval
           FROM events e
           {_subscribed("e")}
           WHERE e.position > $1
             AND NOT EXISTS (SELECT FROM webhook_deliveries x
                             WHERE x.event_seq = e.seq AND x.endpoint_id = w.id AND NOT x.manual)
           ORDER BY e.position
           RETURNING endpoint_id, order_key""", cursor, max_attempts, offset)
    await delivery_store.promote(conn, {(r["endpoint_id"], r["order_key"]) for r in rows})
    top = int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM events WHERE position IS NOT NULL"))
    await advance(conn, top)
    return top
