"""SQL of webhook endpoints. Every query is scoped by partner; deleted rows are invisible."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from controlplane.db.connection import Connection, Executor
from controlplane.webhooks.models import DisabledReason, Endpoint


_COLUMNS = ("id, partner_id, url, description, event_types, enabled, disabled_reason,"
            " consecutive_failures, created_at, updated_at")
_LIVE = "deleted_at IS NULL"


@dataclass(frozen=True)
class FailureTally:
    """Attempts one worker batch saw for one endpoint, in completion order."""

    endpoint_id: str
    reset: bool      # a success came after the previous tally: count from zero
    failures: int    # failures after the last success (or all of them, if none)


@dataclass(frozen=True)
class Tripped:
    """An endpoint that just crossed the auto-disable threshold."""

    endpoint: Endpoint


def _endpoint(row: asyncpg.Record) -> Endpoint:
    reason = row["disabled_reason"]
    return Endpoint(id=row["id"], partner_id=row["partner_id"], url=row["url"],
                    description=row["description"], event_types=list(row["event_types"]),
                    enabled=row["enabled"], disabled_reason=DisabledReason(reason) if reason else None,
                    consecutive_failures=row["consecutive_failures"], created_at=row["created_at"],
                    updated_at=row["updated_at"])


async def insert(conn: Executor, endpoint_id: str, partner_id: str, url: str, description: str,
                 event_types: Sequence[str], enabled: bool, secret_enc: bytes) -> Endpoint:
    row = await conn.fetchrow(
        f"""INSERT INTO webhook_endpoints (id, partner_id, url, description, event_types, enabled,
                                           disabled_reason, secret_enc)
            VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 THEN NULL ELSE 'manual' END, $7)
            RETURNING {_COLUMNS}""",
        endpoint_id, partner_id, url, description, list(event_types), enabled, secret_enc)
    assert row is not None  # INSERT ... RETURNING yields the row it inserted
    return _endpoint(row)


async def list_for_partner(conn: Executor, partner_id: str) -> list[Endpoint]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE partner_id = $1 AND {_LIVE}"
        " ORDER BY created_at, id", partner_id)
    return [_endpoint(r) for r in rows]


async def get(conn: Executor, partner_id: str, endpoint_id: str) -> Endpoint | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND partner_id = $2 AND {_LIVE}",
        endpoint_id, partner_id)
    return _endpoint(row) if row else None


async def update(conn: Executor, partner_id: str, endpoint_id: str, *, url: str | None,
                 description: str | None, event_types: Sequence[str] | None) -> Endpoint | None:
    """Change the given fields (None: keep)."""
    row = await conn.fetchrow(
        f"""UPDATE webhook_endpoints SET url = coalesce($3, url), description = coalesce($4, description),
                   event_types = coalesce($5, event_types), updated_at = now()
            WHERE id = $1 AND partner_id = $2 AND {_LIVE} RETURNING {_COLUMNS}""",
        endpoint_id, partner_id, url, description, list(event_types) if event_types is not None else None)
    return _endpoint(row) if row else None


async def set_enabled(conn: Executor, partner_id: str, endpoint_id: str, enabled: bool,
                      reason: DisabledReason = DisabledReason.MANUAL) -> Endpoint | None:
    """Enabling starts the failure count afresh; disabling records why."""
    row = await conn.fetchrow(
        f"""UPDATE webhook_endpoints
            SET enabled = $3, disabled_reason = CASE WHEN $3 THEN NULL ELSE $4 END,
                consecutive_failures = CASE WHEN $3 AND NOT enabled THEN 0 ELSE consecutive_failures END,
                updated_at = now()
            WHERE id = $1 AND partner_id = $2 AND {_LIVE} RETURNING {_COLUMNS}""",
        endpoint_id, partner_id, enabled, reason.value)
    return _endpoint(row) if row else None


async def set_secret(conn: Executor, partner_id: str, endpoint_id: str, secret_enc: bytes) -> Endpoint | None:
    row = await conn.fetchrow(
        f"""UPDATE webhook_endpoints SET secret_enc = $3, updated_at = now()
            WHERE id = $1 AND partner_id = $2 AND {_LIVE} RETURNING {_COLUMNS}""",
        endpoint_id, partner_id, secret_enc)
    return _endpoint(row) if row else None


async def soft_delete(conn: Connection, partner_id: str, endpoint_id: str) -> bool:
    done = await conn.fetchval(
        f"""UPDATE webhook_endpoints SET deleted_at = now(), enabled = false, updated_at = now()
            WHERE id = $1 AND partner_id = $2 AND {_LIVE} RETURNING true""",
        endpoint_id, partner_id)
    return bool(done)


async def tally_attempts(conn: Connection, tallies: Sequence[FailureTally],
                         threshold: int) -> list[Tripped]:
    """Apply a batch's results to the failure counters; disable those reaching ``threshold``.

    Runs in the transaction that records the attempts, so the counter, the disabling
    and its event (emitted by the caller for each Tripped) commit together.
    """
    if not tallies:
        return []
    # One statement: lock the rows that change (NO KEY UPDATE: the dispatcher's inserts hold
    # KEY SHARE on them through the foreign key), count from their latest values, disable.
    rows = await conn.fetch(
        f"""WITH t AS (SELECT * FROM unnest($1::text[], $2::bool[], $3::int[]) AS t(id, reset, failures)),
                 cur AS (SELECT w.id, w.enabled,
                                CASE WHEN t.reset THEN t.failures
                                     ELSE w.consecutive_failures + t.failures END AS count
                         FROM webhook_endpoints w JOIN t ON t.id = w.id
                         WHERE t.failures > 0 OR w.consecutive_failures <> 0
                         ORDER BY w.id FOR NO KEY UPDATE OF w),
                 new AS (SELECT id, count, enabled AND count >= $4 AS trip FROM cur)
            UPDATE webhook_endpoints w
            SET consecutive_failures = new.count,
                enabled = w.enabled AND NOT new.trip,
                disabled_reason = CASE WHEN new.trip THEN 'consecutive_failures' ELSE w.disabled_reason END,
                updated_at = CASE WHEN new.trip THEN now() ELSE w.updated_at END
            FROM new WHERE w.id = new.id
            RETURNING new.trip, {', '.join('w.' + c.strip() for c in _COLUMNS.split(','))}""",
        [t.endpoint_id for t in tallies], [t.reset for t in tallies], [t.failures for t in tallies], threshold)
    return [Tripped(_endpoint(r)) for r in rows if r["trip"]]
