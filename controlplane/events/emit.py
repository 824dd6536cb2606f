"""``emit()``: how every capability records that something happened."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from controlplane.db.connection import Connection
from controlplane.events import registry, store
from controlplane.events.envelope import Event, build_event, build_events


class NotInTransaction(RuntimeError):
    """emit() was called outside a transaction: the event could outlive a rolled-back change."""


async def emit(conn: Connection, event_type: str, *, partner_id: str,
               data: msgspec.Struct | Mapping[str, Any], tenant_id: str | None = None) -> Event:
    """Write an event into the outbox, inside the caller's open transaction.

    Call it after the write that changes the state, in the same transaction: the
    event then exists iff the change commits, and two changes of one row (which
    lock it) are ordered the way they committed. Delivery to webhook endpoints
    and the ``GET /v1/events`` feed follow from the committed row.
    """
    registry.check(event_type)
    if not conn.is_in_transaction():
        raise NotInTransaction(f"emit({event_type!r}) must run inside the transaction of its change")
    event = build_event(event_type, partner_id=partner_id, data=data, tenant_id=tenant_id)
    await store.insert_event(conn, event)
    return event


# One event for emit_many(): (type, partner id, tenant id, data).
PendingEvent = tuple[str, str, str | None, msgspec.Struct | Mapping[str, Any]]


async def emit_many(conn: Connection, events: Sequence[PendingEvent]) -> list[Event]:
    """Several ``emit()`` in one statement: (type, partner id, tenant id, data) each, in that
    order; the same envelopes and the same rule (inside the transaction of the change)."""
    for event_type, *_ in events:
        registry.check(event_type)
    if events and not conn.is_in_transaction():
        raise NotInTransaction(f"emit_many({events[0][0]!r}, ...) must run inside the transaction of its change")
    built = build_events(events)
    await store.insert_events(conn, built)
    return built
