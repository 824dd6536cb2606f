"""SQL of stored webhook deliveries (the row path): claiming with leases, recording attempts, the debugger.

Every time the worker compares with "now" it uses ``now() + offset`` (the clock
seam): the schedule lives in the database, so it survives restarts and tests can
move time forward without sleeping.

``ready`` marks what may be claimed once due: FAILED rows, redeliveries, and the
head (oldest PENDING) of each (endpoint, order_key) group. Whoever ends a head's
first attempt, or adds rows to a group, promotes the group's new head, holding
that group's lock bucket, so a dispatcher adding a row and a recorder finishing
the head cannot both miss it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from controlplane.db.connection import Connection, Executor
from controlplane.webhooks.models import RESPONSE_EXCERPT, DeliveryStatus, DeliveryView, Group, Job, Outcome

DELIVERY_ID_PREFIX = "dlv_"
GROUP_LOCK_CLASS = 0x6370_6772  # "cpgr", with a bucket number as the second key
GROUP_BUCKETS = 256


def _buckets(groups: Iterable[Group]) -> list[int]:
    """The advisory lock keys of ``groups``, sorted: every taker locks in the same order."""
    return sorted({zlib.crc32(f"{e}\0{k}".encode()) % GROUP_BUCKETS for e, k in groups})


async def promote(conn: Connection, groups: Iterable[Group], *, locked: bool = False) -> None:
    """Mark each group's oldest PENDING delivery ready (idempotent). Inside a transaction.

    Under the groups' advisory locks, taken here unless ``locked`` says an earlier statement of
    the transaction holds them; this statement's snapshot is then taken after they are held.
    """
    groups = sorted(set(groups))
    if not groups:
        return
    if not locked:
        await conn.execute("SELECT pg_advisory_xact_lock($1, b) FROM unnest($2::int[]) AS b",
                           GROUP_LOCK_CLASS, _buckets(groups))
    await conn.execute(
        """UPDATE webhook_deliveries d SET ready = true
           FROM unnest($1::text[], $2::text[]) AS g(endpoint_id, order_key),
                LATERAL (SELECT h.id FROM webhook_deliveries h
                         WHERE h.endpoint_id = g.endpoint_id AND h.order_key = g.order_key
                           AND h.status = 'PENDING' AND NOT h.manual
                         ORDER BY h.position LIMIT 1) head
           WHERE d.id = head.id AND NOT d.ready""",
        [e for e, _ in groups], [k for _, k in groups])


_CLAIM = """
WITH RECURSIVE clock AS (SELECT now() + $1::interval AS t),
endpoints AS (  -- a skip scan: each endpoint that has ready deliveries
    (SELECT d.endpoint_id FROM webhook_deliveries d WHERE d.ready ORDER BY d.endpoint_id LIMIT 1)
    UNION ALL
    SELECT (SELECT d.endpoint_id FROM webhook_deliveries d
            WHERE d.ready AND d.endpoint_id > e.endpoint_id ORDER BY d.endpoint_id LIMIT 1)
    FROM endpoints e WHERE e.endpoint_id IS NOT NULL),
room AS MATERIALIZED (  -- counted up to the bound only, in lease order: see below
    SELECT w.id, $2 - (SELECT count(*) FROM (
                           SELECT FROM webhook_deliveries d
                           WHERE d.endpoint_id = w.id AND d.lease_until IS NOT NULL AND d.lease_until > clock.t
                             AND d.status IN ('PENDING', 'FAILED')
                           ORDER BY d.lease_until LIMIT $2) AS leased)
                 - coalesce((SELECT b.n FROM unnest($7::text[], $8::int[]) AS b(id, n) WHERE b.id = w.id), 0) AS n
    FROM endpoints e JOIN webhook_endpoints w ON w.id = e.endpoint_id AND w.enabled AND w.deleted_at IS NULL,
         clock),
picked AS (
    SELECT c.id FROM room r, clock, LATERAL (
        SELECT d.id, d.due_at, row_number() OVER (ORDER BY d.due_at, d.id) AS rn
        FROM webhook_deliveries d
        WHERE d.endpoint_id = r.id AND d.ready AND d.due_at <= clock.t
          AND (d.lease_until IS NULL OR d.lease_until <= clock.t) AND NOT d.id = ANY($6::bigint[])
        ORDER BY d.due_at, d.id LIMIT greatest(r.n, 0)) c
    ORDER BY c.rn, c.due_at LIMIT $3),
locked AS (
    SELECT d.id FROM webhook_deliveries d, clock
    WHERE d.id IN (SELECT id FROM picked) AND d.ready
      AND (d.lease_until IS NULL OR d.lease_until <= clock.t)
    FOR UPDATE OF d SKIP LOCKED)
UPDATE webhook_deliveries d SET lease_until = clock.t + $4::interval, lease_owner = $5
FROM locked, clock, events e, webhook_endpoints w
WHERE d.id = locked.id AND e.seq = d.event_seq AND w.id = d.endpoint_id
RETURNING d.id, d.endpoint_id, d.order_key, d.manual, e.id AS event_id, e.type, e.body, w.url, w.secret_enc,
          d.attempts, d.max_attempts, clock.t AS claimed_at"""


# The in-flight count walks the leased index in order with a LIMIT: a plain index scan. Every
# claim leaves an entry there that its record makes dead, so a busy endpoint has thousands of
# dead entries with a lease still in the future; a bitmap scan (what a bare count(*) got)
# visits their heap pages at every claim, an index scan marks them dead once and skips them.
async def claim(conn: Connection, *, owner: str, offset: timedelta, per_endpoint: int,
                limit: int, lease: timedelta, exclude: Sequence[int] = (),
                busy: Mapping[str, int] | None = None) -> list[Job]:
    """Lease up to ``limit`` due deliveries, at most ``per_endpoint`` in flight per endpoint.

    One statement, one round trip. The in-flight count includes other processes'
    leases as of the statement's snapshot: two processes claiming at the same instant
    may briefly exceed the bound between them; SKIP LOCKED and the lease re-check
    mean they never claim the same delivery. ``exclude``: deliveries this worker
    still has in flight, whatever their lease says (a test moving the clock must not
    make a worker race itself). ``busy``: the lane's attempts in flight per endpoint
    (they hold no lease), counted against the bound.
    """
    busy = busy or {}
    rows = await conn.fetch(_CLAIM, offset, per_endpoint, limit, lease, owner, list(exclude),
                            list(busy), list(busy.values()))
    return [Job(delivery_id=r["id"], endpoint_id=r["endpoint_id"], event_id=r["event_id"],
                event_type=r["type"], body=r["body"], url=r["url"], secret_enc=r["secret_enc"],
                attempts=r["attempts"], max_attempts=r["max_attempts"], claimed_at=r["claimed_at"],
                order_key=r["order_key"], manual=r["manual"])
            for r in rows]


@dataclass(frozen=True)
class Recorded:
    kept: set[int]  # the deliveries still leased by us: their attempts were stored
    # Whether an endpoint of a kept delivery had a failure counter above 0 when read by the
    # statement: with none, and no failure in the batch, a tally would write nothing.
    counting: bool


async def record(conn: Connection, outcomes: Sequence[tuple[Outcome, DeliveryStatus, float]],
                 *, owner: str, offset: timedelta) -> Recorded:
    """Store attempts (outcome, new status, seconds to the next attempt).

    Inside a transaction: a head whose first attempt ended hands over to the next in its group.
    """
    if not outcomes:
        return Recorded(set(), False)
    heads = [o.job for o, _, _ in outcomes if o.job.attempts == 0 and not o.job.manual]
    # The statement also takes the advisory locks of the groups whose head may hand over (a
    # round trip saved): the promote below, a later statement, then runs under them. A row
    # comes back only once the one-row ``locks`` has been produced, and with no row kept
    # there is nothing to promote. Locking after the row updates cannot deadlock: the
    # fan-out's promote, the other taker of these locks, never waits on a ready row.
    rows = await conn.fetch(
        """WITH locks AS (SELECT count(pg_advisory_xact_lock($11, b)::text) FROM unnest($12::int[]) AS b)
           UPDATE webhook_deliveries d SET
               attempts = d.attempts + 1, status = r.status, ready = r.status = 'FAILED',
               due_at = CASE WHEN r.status = 'FAILED' THEN c.t + make_interval(secs => r.delay) ELSE d.due_at END,
               last_attempt_at = r.at, response_status = r.code, error = r.error,
               response_body = r.body, response_truncated = r.truncated,
               delivered_at = CASE WHEN r.status = 'DELIVERED' THEN c.t END,
               lease_until = NULL, lease_owner = NULL
           FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::timestamptz[], $5::int[], $6::text[],
                       $7::bytea[], $8::bool[]) AS r(id, status, delay, at, code, error, body, truncated),
                (SELECT now() + $9::interval AS t) c, locks, webhook_endpoints w
           WHERE d.id = r.id AND d.lease_owner = $10 AND w.id = d.endpoint_id
           RETURNING d.id, w.consecutive_failures <> 0 AS counting""",
        [o.job.delivery_id for o, _, _ in outcomes], [s.value for _, s, _ in outcomes],
        [d for _, _, d in outcomes], [o.attempted_at for o, _, _ in outcomes],
        [o.response_status for o, _, _ in outcomes], [o.error for o, _, _ in outcomes],
        [o.response_body for o, _, _ in outcomes], [o.response_truncated for o, _, _ in outcomes],
        offset, owner, GROUP_LOCK_CLASS, _buckets((j.endpoint_id, j.order_key) for j in heads))
    kept = {r["id"] for r in rows}
    await promote(conn, {(j.endpoint_id, j.order_key) for j in heads if j.delivery_id in kept}, locked=True)
    return Recorded(kept, any(r["counting"] for r in rows))


async def abandon(conn: Connection, endpoint_id: str, reason: str) -> None:
    """Stop everything still to be sent to an endpoint (it is being deleted)."""
    await conn.execute(
        """UPDATE webhook_deliveries SET status = 'DEAD', ready = false, error = $2,
                  lease_until = NULL, lease_owner = NULL
           WHERE endpoint_id = $1 AND status IN ('PENDING', 'FAILED')""", endpoint_id, reason)


_VIEW = """SELECT d.id, e.id AS event_id, e.type, d.status, d.attempts, d.max_attempts, d.manual,
                  d.created_at, d.last_attempt_at, d.due_at, d.response_status, d.error, e.body,
                  d.response_body, d.response_truncated
           FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq"""


def _view(row: asyncpg.Record) -> DeliveryView:
    status = DeliveryStatus(row["status"])
    waiting = status in (DeliveryStatus.PENDING, DeliveryStatus.FAILED)
    response = row["response_body"]
    return DeliveryView(
        id=f"{DELIVERY_ID_PREFIX}{row['id']}", event_id=row["event_id"], event_type=row["type"],
        status=status, attempts=row["attempts"], max_attempts=row["max_attempts"], redelivery=row["manual"],
        created_at=row["created_at"], last_attempt_at=row["last_attempt_at"],
        next_attempt_at=row["due_at"] if waiting else None, response_status=row["response_status"],
        error=row["error"], request_body=bytes(row["body"]).decode("utf-8", "replace"),
        # rows from before the excerpt limit may hold more: cut them too
        response_body=None if response is None else bytes(response)[:RESPONSE_EXCERPT].decode("utf-8", "replace"),
        response_truncated=row["response_truncated"] or len(response or b"") > RESPONSE_EXCERPT)


async def recent(conn: Executor, endpoint_id: str, limit: int = 100) -> list[DeliveryView]:
    rows = await conn.fetch(f"{_VIEW} WHERE d.endpoint_id = $1 ORDER BY d.id DESC LIMIT $2", endpoint_id, limit)
    return [_view(r) for r in rows]


async def get(conn: Executor, endpoint_id: str, delivery_id: int) -> DeliveryView | None:
    row = await conn.fetchrow(f"{_VIEW} WHERE d.endpoint_id = $1 AND d.id = $2", endpoint_id, delivery_id)
    return _view(row) if row else None


async def redeliver(conn: Executor, endpoint_id: str, delivery_id: int) -> DeliveryView | None:
    """A new, single-attempt delivery of the same event (same body, same id), due now."""
    new_id = await conn.fetchval(
        """INSERT INTO webhook_deliveries (endpoint_id, event_seq, position, order_key, max_attempts,
                                           manual, ready, due_at)
           SELECT endpoint_id, event_seq, position, order_key, 1, true, true, now()
           FROM webhook_deliveries WHERE endpoint_id = $1 AND id = $2 RETURNING id""",
        endpoint_id, delivery_id)
    return None if new_id is None else await get(conn, endpoint_id, new_id)
