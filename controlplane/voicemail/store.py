"""SQL of voicemail: box settings, lockout state, imported messages, retention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from controlplane.voicemail.lockout import LockState

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
_NOT_SET: Any = object()


@dataclass(frozen=True, slots=True)
class TenantRef:
    id: str
    partner_id: str
    prefix: str
    status: str


@dataclass(frozen=True, slots=True)
class BoxRow:
    extension_id: str
    tenant_id: str
    number: str
    display_name: str
    enabled: bool
    pin: str | None
    email: str | None
    attach_audio: bool
    has_greeting: bool
    lock: LockState


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: str
    tenant_id: str
    extension_id: str | None
    mailbox: str
    caller: str
    duration_s: int
    received_at: datetime
    size_bytes: int
    emailed: bool


async def tenant(conn: Conn, partner_id: str | None, tenant_id: str) -> TenantRef | None:
    """The tenant (of the partner, when one is named)."""
    row = await conn.fetchrow(
        "SELECT id, partner_id, sip_prefix, status FROM tenants WHERE id = $1 AND ($2::text IS NULL OR partner_id = $2)",
        tenant_id, partner_id)
    return TenantRef(row["id"], row["partner_id"], row["sip_prefix"], row["status"]) if row else None


async def tenant_by_prefix(conn: Conn, prefix: str) -> TenantRef | None:
    row = await conn.fetchrow("SELECT id, partner_id, sip_prefix, status FROM tenants WHERE sip_prefix = $1", prefix)
    return TenantRef(row["id"], row["partner_id"], row["sip_prefix"], row["status"]) if row else None


_BOX = """
SELECT e.id AS extension_id, e.tenant_id, e.number, e.display_name, e.voicemail_enabled,
       b.pin, b.email, coalesce(b.attach_audio, true) AS attach_audio,
       coalesce(b.has_greeting, false) AS has_greeting, coalesce(b.failures, 0) AS failures,
       coalesce(b.lockouts, 0) AS lockouts, b.locked_until
FROM extensions e LEFT JOIN voicemail_boxes b ON b.extension_id = e.id
"""


def _box(row: asyncpg.Record) -> BoxRow:
    return BoxRow(row["extension_id"], row["tenant_id"], row["number"], row["display_name"],
                  row["voicemail_enabled"], row["pin"], row["email"], row["attach_audio"], row["has_greeting"],
                  LockState(row["failures"], row["lockouts"], row["locked_until"]))


async def box(conn: Conn, tenant_id: str, extension_id: str, *, lock: bool = False) -> BoxRow | None:
    if lock:  # serialise writers of one box (a row may not exist yet: lock the extension)
        await conn.execute("SELECT 1 FROM extensions WHERE id = $1 FOR UPDATE", extension_id)
    row = await conn.fetchrow(_BOX + " WHERE e.tenant_id = $1 AND e.id = $2", tenant_id, extension_id)
    return _box(row) if row else None


async def box_by_number(conn: Conn, tenant_id: str, number: str, *, lock: bool = False) -> BoxRow | None:
    row = await conn.fetchrow(_BOX + " WHERE e.tenant_id = $1 AND e.number = $2", tenant_id, number)
    if row is None or not lock:
        return _box(row) if row else None
    return await box(conn, tenant_id, row["extension_id"], lock=True)


async def save_box(conn: Conn, b: BoxRow) -> None:
    await conn.execute(
        """INSERT INTO voicemail_boxes (extension_id, tenant_id, pin, email, attach_audio, has_greeting,
                                        failures, lockouts, locked_until, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
           ON CONFLICT (extension_id) DO UPDATE SET pin = EXCLUDED.pin, email = EXCLUDED.email,
               attach_audio = EXCLUDED.attach_audio, has_greeting = EXCLUDED.has_greeting,
               failures = EXCLUDED.failures, lockouts = EXCLUDED.lockouts,
               locked_until = EXCLUDED.locked_until, updated_at = now()""",
        b.extension_id, b.tenant_id, b.pin, b.email, b.attach_audio, b.has_greeting,
        b.lock.failures, b.lock.lockouts, b.lock.locked_until)


async def enabled_box_exists(conn: Conn, tenant_id: str, number: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT 1 FROM extensions WHERE tenant_id = $1 AND number = $2 AND voicemail_enabled", tenant_id, number))


async def extension_exists(conn: Conn, tenant_id: str, number: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM extensions WHERE tenant_id = $1 AND number = $2",
                                    tenant_id, number))


# ---------------------------------------------------------------- messages

_MSG = "SELECT id::text, tenant_id, extension_id, mailbox, caller, duration_s, received_at, size_bytes, emailed" \
       " FROM voicemail_messages"


def _msg(row: asyncpg.Record) -> MessageRow:
    return MessageRow(row["id"], row["tenant_id"], row["extension_id"], row["mailbox"], row["caller"],
                      row["duration_s"], row["received_at"], row["size_bytes"], row["emailed"])


async def known_ids(conn: Conn, tenant_id: str, mailbox: str) -> set[str]:
    rows = await conn.fetch("SELECT asterisk_id FROM voicemail_messages WHERE tenant_id = $1 AND mailbox = $2",
                            tenant_id, mailbox)
    return {r["asterisk_id"] for r in rows}


async def insert_message(conn: Conn, *, message_id: str, tenant_id: str, extension_id: str | None, mailbox: str,
                         asterisk_id: str, caller: str, duration_s: int, received_at: datetime,
                         size_bytes: int, emailed: bool) -> bool:
    """False when the message was imported before (another sweep or daemon won)."""
    inserted = await conn.fetchval(
        """INSERT INTO voicemail_messages (id, tenant_id, extension_id, mailbox, asterisk_id, caller, duration_s,
                                           received_at, size_bytes, emailed)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (tenant_id, mailbox, asterisk_id) DO NOTHING RETURNING 1""",
        message_id, tenant_id, extension_id, mailbox, asterisk_id, caller, duration_s, received_at, size_bytes,
        emailed)
    return inserted is not None


async def list_messages(conn: Conn, tenant_id: str, extension_id: str | None, limit: int,
                        before: tuple[datetime, str] | None) -> list[MessageRow]:
    args: list[Any] = [tenant_id, extension_id, limit]
    where = "tenant_id = $1 AND ($2::text IS NULL OR extension_id = $2)"
    if before is not None:
        where += " AND (received_at, id::text) < ($4, $5)"
        args += list(before)
    rows = await conn.fetch(f"{_MSG} WHERE {where} ORDER BY received_at DESC, id DESC LIMIT $3", *args)
    return [_msg(r) for r in rows]


async def get_message(conn: Conn, tenant_id: str, message_id: str) -> MessageRow | None:
    row = await conn.fetchrow(f"{_MSG} WHERE tenant_id = $1 AND id = $2::uuid", tenant_id, message_id)
    return _msg(row) if row else None


async def delete_message(conn: Conn, tenant_id: str, message_id: str) -> bool:
    return bool(await conn.fetchval("DELETE FROM voicemail_messages WHERE tenant_id = $1 AND id = $2::uuid"
                                    " RETURNING 1", tenant_id, message_id))


async def expired_messages(conn: Conn, default_days: int, limit: int = 500) -> list[tuple[str, str]]:
    """(tenant id, message id) of messages past their tenant's retention."""
    rows = await conn.fetch(
        """SELECT m.tenant_id, m.id::text AS id FROM voicemail_messages m
           LEFT JOIN media_retention r ON r.tenant_id = m.tenant_id
           WHERE m.received_at < now() - make_interval(days => coalesce(r.voicemail_days, $1))
           LIMIT $2""", default_days, limit)
    return [(r["tenant_id"], r["id"]) for r in rows]


async def delete_messages(conn: Conn, ids: Sequence[str]) -> None:
    await conn.execute("DELETE FROM voicemail_messages WHERE id = ANY($1::uuid[])", list(ids))


async def retention_days(conn: Conn, tenant_id: str, default_days: int) -> int:
    found = await conn.fetchval("SELECT voicemail_days FROM media_retention WHERE tenant_id = $1", tenant_id)
    return int(found) if found is not None else default_days


async def tenant_ids(conn: Conn) -> set[str]:
    return {r["id"] for r in await conn.fetch("SELECT id FROM tenants")}


async def prefixes(conn: Conn) -> set[str]:
    return {r["sip_prefix"] for r in await conn.fetch("SELECT sip_prefix FROM tenants")}
