"""The notifier: follows the sequenced events in position order and mails the partner.

Positions are stamped on committed events by the webhook dispatcher, one batch at a
time under a lock, so "position > cursor" never skips an event (events/store.py). The
cursor moves in the same transaction as the enqueues of the events it passes: each
event is mailed exactly once into the outbox (the outbox then delivers at least once),
whatever dies when. Several daemons share the one cursor row (FOR UPDATE).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import jinja2
import msgspec
import structlog

from controlplane.brand import store as brand_store
from controlplane.db.connection import Connection
from controlplane.db.errors import DB_ERRORS
from controlplane.mail import store
from controlplane.mail.render import TemplateMissing
from controlplane.mail.rules import rule_for
from controlplane.tenants import store as tenants_store

log = structlog.get_logger(__name__)
CURSOR = "notifier"
BATCH = 200


@dataclass(frozen=True)
class SequencedEvent:
    position: int
    id: str
    type: str
    partner_id: str
    tenant_id: str | None
    body: bytes


async def _events(conn: Connection, after: int, limit: int) -> list[SequencedEvent]:
    rows = await conn.fetch(
        """SELECT position, id, type, partner_id, tenant_id, body FROM events
           WHERE position IS NOT NULL AND position > $1 ORDER BY position LIMIT $2""", after, limit)
    return [SequencedEvent(r["position"], r["id"], r["type"], r["partner_id"], r["tenant_id"], bytes(r["body"]))
            for r in rows]


async def _notify(conn: Connection, event: SequencedEvent) -> bool:
    """Queue the event's mail when it has one; True when a mail was queued."""
    if rule_for(event.type, None) is None and rule_for(event.type, "tenant") is None:
        return False  # not mailed whatever its data: the body is not decoded
    envelope: dict[str, Any] = msgspec.json.decode(event.body)
    found = envelope.get("data")
    data: dict[str, Any] = found if isinstance(found, dict) else {}
    rule = rule_for(event.type, data.get("payer"))
    if rule is None:
        return False
    bound = log.bind(event_id=event.id, event_type=event.type, partner_id=event.partner_id)
    contact = await brand_store.partner_contact(conn, event.partner_id)
    if contact is None or contact.billing_email is None:
        bound.info("mail.notify_skipped", reason="the partner has no billing email")
        return False
    if rule.preference is not None and not contact.notifications.allows(rule.preference):
        return False
    tenant_id = event.tenant_id or (data.get("tenant_id") if isinstance(data.get("tenant_id"), str) else None)
    tenant = None if tenant_id is None else await tenants_store.get_tenant(conn, event.partner_id, tenant_id)
    values = {"event": {"id": event.id, "type": event.type, "created_at": envelope.get("created_at", "")},
              "data": data, "tenant_name": tenant.name if tenant else None, "tenant_id": tenant_id,
              "company_name": contact.company_name}
    try:
        return await store.enqueue(conn, partner_id=event.partner_id, to=contact.billing_email,
                                   template=rule.template, values=values, reference=f"event:{event.id}")
    except (jinja2.TemplateError, TemplateMissing, ValueError):
        # A mail that cannot be rendered must not stop every later one: logged, passed.
        bound.exception("mail.notify_failed")
        return False


async def step(pool: asyncpg.Pool, limit: int = BATCH) -> int:
    """Mail the next batch of events and move the cursor past them; how many events were read."""
    async with pool.acquire() as conn, conn.transaction():
        after = await conn.fetchval(
            "SELECT position FROM mail_notifier_cursor WHERE name = $1 FOR UPDATE", CURSOR)
        if after is None:  # a database whose cursor row was removed starts from the newest position
            after = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
            await conn.execute("INSERT INTO mail_notifier_cursor (name, position) VALUES ($1, $2)"
                               " ON CONFLICT (name) DO NOTHING", CURSOR, after)
        events = await _events(conn, after, limit)
        for event in events:
            await _notify(conn, event)
        if events:
            await conn.execute("UPDATE mail_notifier_cursor SET position = $2 WHERE name = $1",
                               CURSOR, events[-1].position)
    return len(events)


@dataclass
class Notifier:
    pool: asyncpg.Pool
    poll_interval: float = 1.0
    errors: int = field(default=0)

    def __post_init__(self) -> None:
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                while await step(self.pool) == BATCH:
                    pass
            except DB_ERRORS:
                self.errors += 1
                log.exception("mail.notifier_failed")

