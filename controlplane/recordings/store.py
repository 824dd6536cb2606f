"""SQL of call recording: policies, recordings, and the per-tenant retention of media."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from controlplane.voicemail.render import RecordingMode, RecordingScope, ScopedPolicy

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


@dataclass(frozen=True, slots=True)
class RecordingRow:
    id: str
    tenant_id: str
    call_id: str
    linkedid: str
    uniqueid: str
    scope: str
    ref: str
    started_at: datetime
    duration_s: float
    size_bytes: int


async def policies(conn: Conn, tenant_ids: Sequence[str]) -> dict[str, list[ScopedPolicy]]:
    rows = await conn.fetch("SELECT tenant_id, scope, ref, mode FROM recording_policies"
                            " WHERE tenant_id = ANY($1::text[]) ORDER BY scope, ref", list(tenant_ids))
    out: dict[str, list[ScopedPolicy]] = {}
    for r in rows:
        out.setdefault(r["tenant_id"], []).append(
            ScopedPolicy(RecordingScope(r["scope"]), r["ref"], RecordingMode(r["mode"])))
    return out


async def put_policy(conn: Conn, tenant_id: str, policy: ScopedPolicy) -> None:
    await conn.execute(
        """INSERT INTO recording_policies (tenant_id, scope, ref, mode) VALUES ($1, $2, $3, $4)
           ON CONFLICT (tenant_id, scope, ref) DO UPDATE SET mode = EXCLUDED.mode, updated_at = now()""",
        tenant_id, policy.scope.value, policy.ref, policy.mode.value)


async def delete_policy(conn: Conn, tenant_id: str, scope: RecordingScope, ref: str) -> bool:
    return bool(await conn.fetchval("DELETE FROM recording_policies WHERE tenant_id = $1 AND scope = $2"
                                    " AND ref = $3 RETURNING 1", tenant_id, scope.value, ref))


async def tenant_partner(conn: Conn, partner_id: str | None, tenant_id: str) -> str | None:
    """The tenant's partner id (None: no such tenant for this partner)."""
    found = await conn.fetchval("SELECT partner_id FROM tenants WHERE id = $1 AND ($2::text IS NULL"
                                " OR partner_id = $2)", tenant_id, partner_id)
    return str(found) if found is not None else None


# ---------------------------------------------------------------- recordings

_REC = "SELECT id::text, tenant_id, linkedid, uniqueid, scope, ref, started_at, duration_s, size_bytes FROM recordings"


def _rec(row: asyncpg.Record, call_id: str) -> RecordingRow:
    return RecordingRow(row["id"], row["tenant_id"], call_id, row["linkedid"], row["uniqueid"], row["scope"],
                        row["ref"], row["started_at"], float(row["duration_s"]), row["size_bytes"])


async def insert_recording(conn: Conn, *, recording_id: str, tenant_id: str, linkedid: str, uniqueid: str,
                           scope: str, ref: str, started_at: datetime) -> bool:
    return bool(await conn.fetchval(
        """INSERT INTO recordings (id, tenant_id, linkedid, uniqueid, scope, ref, started_at)
           SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $2)
           ON CONFLICT (uniqueid) DO NOTHING RETURNING 1""",
        recording_id, tenant_id, linkedid, uniqueid, scope, ref, started_at))


async def unfinished(conn: Conn, *, linkedid: str | None = None, older_than: datetime | None = None,
                     limit: int = 200) -> list[asyncpg.Record]:
    """Recordings whose file was not measured yet (of one call, or started before a time)."""
    return list(await conn.fetch(
        "SELECT id::text, tenant_id, uniqueid, started_at FROM recordings WHERE size_bytes = 0"
        " AND ($1::text IS NULL OR linkedid = $1) AND ($2::timestamptz IS NULL OR started_at < $2)"
        " ORDER BY started_at LIMIT $3", linkedid, older_than, limit))


async def finish(conn: Conn, recording_id: str, duration_s: float, size_bytes: int) -> None:
    await conn.execute("UPDATE recordings SET duration_s = $2, size_bytes = $3 WHERE id = $1::uuid",
                       recording_id, Decimal(f"{duration_s:.2f}"), size_bytes)


async def drop(conn: Conn, ids: Sequence[str]) -> None:
    await conn.execute("DELETE FROM recordings WHERE id = ANY($1::uuid[])", list(ids))


async def list_recordings(conn: Conn, tenant_id: str, linkedid: str | None, limit: int,
                          before: tuple[datetime, str] | None, call_id_of: Any) -> list[RecordingRow]:
    args: list[Any] = [tenant_id, linkedid, limit]
    where = "tenant_id = $1 AND size_bytes > 0 AND ($2::text IS NULL OR linkedid = $2)"
    if before is not None:
        where += " AND (started_at, id::text) < ($4, $5)"
        args += list(before)
    rows = await conn.fetch(f"{_REC} WHERE {where} ORDER BY started_at DESC, id DESC LIMIT $3", *args)
    return [_rec(r, call_id_of(r["linkedid"])) for r in rows]


async def get_recording(conn: Conn, tenant_id: str, recording_id: str, call_id_of: Any) -> RecordingRow | None:
    row = await conn.fetchrow(f"{_REC} WHERE tenant_id = $1 AND id = $2::uuid AND size_bytes > 0",
                              tenant_id, recording_id)
    return _rec(row, call_id_of(row["linkedid"])) if row else None


async def linkedid_of_call(conn: Conn, tenant_id: str, call_id: str) -> str | None:
    found = await conn.fetchval("SELECT linkedid FROM call_records WHERE tenant_id = $1 AND id = $2 LIMIT 1",
                                tenant_id, call_id)
    return str(found) if found is not None else None


async def recording_ids(conn: Conn, linkedids: Sequence[str]) -> dict[str, list[str]]:
    """Linkedid -> the ids of its recordings (what ``call.completed`` announces)."""
    out: dict[str, list[str]] = {}
    if linkedids:
        for r in await conn.fetch("SELECT linkedid, id::text FROM recordings WHERE linkedid = ANY($1::text[])"
                                  " ORDER BY started_at", list(linkedids)):
            out.setdefault(r["linkedid"], []).append(r["id"])
    return out


async def expired(conn: Conn, default_days: int, limit: int = 500) -> list[tuple[str, str, str]]:
    """(tenant id, recording id, uniqueid) of recordings past their tenant's retention."""
    rows = await conn.fetch(
        """SELECT g.tenant_id, g.id::text AS id, g.uniqueid FROM recordings g
           LEFT JOIN media_retention r ON r.tenant_id = g.tenant_id
           WHERE g.started_at < now() - make_interval(days => coalesce(r.recording_days, $1))
           LIMIT $2""", default_days, limit)
    return [(r["tenant_id"], r["id"], r["uniqueid"]) for r in rows]


# ---------------------------------------------------------------- retention

async def get_retention(conn: Conn, tenant_id: str) -> tuple[int, int] | None:
    row = await conn.fetchrow("SELECT voicemail_days, recording_days FROM media_retention WHERE tenant_id = $1",
                              tenant_id)
    return (row["voicemail_days"], row["recording_days"]) if row else None


async def put_retention(conn: Conn, tenant_id: str, voicemail_days: int, recording_days: int) -> None:
    await conn.execute(
        """INSERT INTO media_retention (tenant_id, voicemail_days, recording_days) VALUES ($1, $2, $3)
           ON CONFLICT (tenant_id) DO UPDATE SET voicemail_days = EXCLUDED.voicemail_days,
               recording_days = EXCLUDED.recording_days, updated_at = now()""",
        tenant_id, voicemail_days, recording_days)


async def tenant_ids(conn: Conn) -> set[str]:
    return {r["id"] for r in await conn.fetch("SELECT id FROM tenants")}


async def did_of_tenant(conn: Conn, tenant_id: str, number: str) -> bool:
    """Whether the DID is routed to the tenant now (the numbers capability's table, read only)."""
    return bool(await conn.fetchval("SELECT 1 FROM dids WHERE tenant_id = $1 AND number = $2 AND status = 'ACTIVE'",
                                    tenant_id, number))
