"""SQL of the event outbox: insert, sequence (stamp commit-order positions), read the feed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from controlplane.db.connection import Connection, Executor
from controlplane.events.envelope import Event

NOTIFY_CHANNEL = "controlplane_events"
# Serialises sequencers across processes: positions must be handed out by one at a time.
SEQUENCER_LOCK = 0x6370_6576  # "cpev"


@dataclass(frozen=True)
class Sequenced:
    """An event that just got its position, as the fan-out needs it."""

    seq: int
    position: int
    type: str
    partner_id: str
    tenant_id: str | None


@dataclass(frozen=True)
class FeedQuery:
    partner_id: str
    after_position: int
    limit: int
    types: tuple[str, ...] = ()
    tenant_id: str | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None


async def insert_event(conn: Connection, event: Event) -> int:
    seq: int = await conn.fetchval(
        "INSERT INTO events (id, type, partner_id, tenant_id, created_at, body)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
        event.id, event.type, event.partner_id, event.tenant_id, event.created_at, event.body)
    return seq


# From this many events on, COPY: its rows are encoded by the driver's binary copier, not as
# six parameter arrays element by element (the invoice job writes 500 per transaction).
COPY_FROM = 64


async def insert_events(conn: Connection, events: Sequence[Event]) -> None:
    """Several events in one statement; ``seq`` follows the order given (COPY inserts its rows
    in order, and fires the statement trigger that wakes the dispatcher like an INSERT does)."""
    if not events:
        return
    if len(events) >= COPY_FROM:
        await conn.copy_records_to_table(
            "events", columns=["id", "type", "partner_id", "tenant_id", "created_at", "body"],
            records=[(e.id, e.type, e.partner_id, e.tenant_id, e.created_at, e.body) for e in events])
        return
    await conn.execute(
        """INSERT INTO events (id, type, partner_id, tenant_id, created_at, body)
           SELECT id, type, partner_id, tenant_id, created_at, body
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bytea[])
                WITH ORDINALITY AS t(id, type, partner_id, tenant_id, created_at, body, ord)
           ORDER BY ord""",
        [e.id for e in events], [e.type for e in events], [e.partner_id for e in events],
        [e.tenant_id for e in events], [e.created_at for e in events], [e.body for e in events])


async def sequence_pending(conn: Connection, limit: int) -> list[Sequenced]:
    """Stamp positions on up to ``limit`` committed, unsequenced events, oldest first.

    Must run inside a transaction; it takes the sequencer lock for its duration, so
    a position is never handed out twice and never below one already visible.
    """
    await conn.execute("SELECT pg_advisory_xact_lock($1)", SEQUENCER_LOCK)
    rows = await conn.fetch(
        """WITH batch AS (SELECT seq FROM events WHERE position IS NULL ORDER BY seq LIMIT $1),
                base AS (SELECT coalesce(max(position), 0) AS top FROM events WHERE position IS NOT NULL),
                numbered AS (SELECT b.seq, base.top + row_number() OVER (ORDER BY b.seq) AS position
                             FROM batch b CROSS JOIN base)
           UPDATE events e SET position = n.position FROM numbered n WHERE e.seq = n.seq
           RETURNING e.seq, e.position, e.type, e.partner_id, e.tenant_id""",
        limit)
    found = [Sequenced(r["seq"], r["position"], r["type"], r["partner_id"], r["tenant_id"]) for r in rows]
    found.sort(key=lambda s: s.position)
    return found


async def feed(conn: Executor, query: FeedQuery) -> list[tuple[int, bytes]]:
    """(position, envelope) of the partner's sequenced events after the cursor."""
    rows = await conn.fetch(
        """SELECT position, body FROM events
           WHERE partner_id = $1 AND position IS NOT NULL AND position > $2
             AND (cardinality($3::text[]) = 0 OR type = ANY($3::text[]))
             AND ($4::text IS NULL OR tenant_id = $4)
             AND ($5::timestamptz IS NULL OR created_at >= $5)
             AND ($6::timestamptz IS NULL OR created_at < $6)
           ORDER BY position LIMIT $7""",
        query.partner_id, query.after_position, list(query.types), query.tenant_id,
        query.created_from, query.created_before, query.limit)
    return [(r["position"], r["body"]) for r in rows]


async def get_body(conn: Executor, partner_id: str, event_id: str) -> bytes | None:
    body: bytes | None = await conn.fetchval(
        "SELECT body FROM events WHERE id = $1 AND partner_id = $2", event_id, partner_id)
    return body
