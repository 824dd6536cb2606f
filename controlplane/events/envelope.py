"""The event envelope: ids, timestamps and the exact bytes endpoints receive.

Pure: no I/O. The body is encoded once, at emit time, and stored; every retry
and every redelivery sends those same bytes, so signatures and ids are stable.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

EVENT_ID_PREFIX = "evt_"

_encoder = msgspec.json.Encoder()


class Event(msgspec.Struct, frozen=True):
    """An emitted event; ``body`` is the JSON envelope as sent."""

    id: str
    type: str
    created_at: datetime
    partner_id: str
    tenant_id: str | None
    body: bytes


class _Envelope(msgspec.Struct):
    # Field order is the order on the wire: id, type, created_at, partner_id, data.
    id: str
    type: str
    created_at: str
    partner_id: str
    data: msgspec.Raw


def new_event_id() -> str:
    return EVENT_ID_PREFIX + secrets.token_hex(12)


def now_ms() -> datetime:
    """UTC now at millisecond precision: what the envelope shows is what the column holds."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def rfc3339(moment: datetime) -> str:
    """``2026-05-04T14:23:45.123Z``: UTC, milliseconds, a Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def encode_data(data: msgspec.Struct | Mapping[str, Any]) -> bytes:
    """The ``data`` object as JSON; anything that is not a JSON object is refused."""
    if not isinstance(data, dict) and isinstance(data, Mapping):
        data = dict(data)
    raw = _encoder.encode(data)
    if not raw.startswith(b"{"):
        raise TypeError(f"event data must encode to a JSON object, not {type(data).__name__}")
    return raw


def build_event(event_type: str, *, partner_id: str, data: msgspec.Struct | Mapping[str, Any],
                tenant_id: str | None = None, event_id: str | None = None,
                created_at: datetime | None = None) -> Event:
    event_id = event_id or new_event_id()
    created_at = created_at or now_ms()
    body = _encoder.encode(_Envelope(id=event_id, type=event_type, created_at=rfc3339(created_at),
                                     partner_id=partner_id, data=msgspec.Raw(encode_data(data))))
    return Event(event_id, event_type, created_at, partner_id, tenant_id, body)


def new_event_ids(n: int) -> list[str]:
    """``n`` ids like ``new_event_id``'s, from one read of the random source."""
    raw = secrets.token_hex(12 * n)
    return [EVENT_ID_PREFIX + raw[i:i + 24] for i in range(0, 24 * n, 24)]


def build_events(events: Sequence[tuple[str, str, str | None, msgspec.Struct | Mapping[str, Any]]],
                 created_at: datetime | None = None) -> list[Event]:
    """``build_event`` for each (type, partner id, tenant id, data), sharing one ``created_at``:
    the same bytes ``build_event`` makes for those ids and that time, with the envelope around
    ``data`` encoded once per type instead of once per event (a batch of thousands)."""
    created_at = created_at or now_ms()
    stamp = _encoder.encode(rfc3339(created_at))
    heads: dict[str, bytes] = {}
    out: list[Event] = []
    for event_id, (event_type, partner_id, tenant_id, data) in zip(new_event_ids(len(events)), events, strict=True):
        head = heads.get(event_type)
        if head is None:
            head = heads[event_type] = b'","type":' + _encoder.encode(event_type) + b',"created_at":' + stamp
        body = b"".join((b'{"id":"', event_id.encode(), head, b',"partner_id":', _encoder.encode(partner_id),
                         b',"data":', encode_data(data), b"}"))
        out.append(Event(event_id, event_type, created_at, partner_id, tenant_id, body))
    return out
