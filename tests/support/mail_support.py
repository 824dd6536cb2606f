"""Helpers of the mail and brand tests: partners, sequenced events, a worker on the test relay."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import asyncpg

from controlplane.config import MailConfig
from controlplane.events import emit, store as events_store
from controlplane.mail.worker import MailWorker

from smtp_support import SmtpServer

PLATFORM_FROM = "noreply@platform.test"


async def partner(pool: asyncpg.Pool, name: str = "Reseller") -> str:
    partner_id = f"ptr_{secrets.token_hex(8)}"
    await pool.execute("INSERT INTO partners (id, name, tier) VALUES ($1, $2, 'BUSINESS')", partner_id, name)
    return partner_id


async def set_brand(pool: asyncpg.Pool, partner_id: str, **columns: Any) -> None:
    names = list(columns)
    await pool.execute(
        f"INSERT INTO partner_brand (partner_id, {', '.join(names)}) VALUES ($1, "
        f"{', '.join(f'${i + 2}' for i in range(len(names)))}) ON CONFLICT (partner_id) DO UPDATE SET "
        + ", ".join(f"{n} = EXCLUDED.{n}" for n in names), partner_id, *columns.values())


async def emit_sequenced(pool: asyncpg.Pool, event_type: str, partner_id: str, data: Mapping[str, Any],
                         tenant_id: str | None = None) -> str:
    """Emit an event and sequence it the way the webhook dispatcher does (its position)."""
    async with pool.acquire() as conn, conn.transaction():
        event = await emit(conn, event_type, partner_id=partner_id, tenant_id=tenant_id, data=data)
    async with pool.acquire() as conn, conn.transaction():
        await events_store.sequence_pending(conn, 1000)
    return event.id


def worker(pool: asyncpg.Pool, smtp: SmtpServer, **config: Any) -> MailWorker:
    return MailWorker(pool=pool, config=MailConfig(host=smtp.host, port=smtp.port, from_address=PLATFORM_FROM,
                                                   timeout=5.0, **config))


async def outbox(pool: asyncpg.Pool, reference: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM mail_outbox WHERE reference = $1", reference)
    assert row is not None, f"no mail {reference!r} in the outbox"
    return row
