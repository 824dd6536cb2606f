"""Opaque cursors over (created_at, id): stable when rows are inserted meanwhile."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

import msgspec

from controlplane.http.problems import Problem

PAGE_SIZES = (10, 20, 50, 100)
DEFAULT_PAGE_SIZE = 20


@dataclass(frozen=True, slots=True)
class Position:
    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    after: Position | None


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = msgspec.json.encode([created_at.isoformat(), row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = msgspec.json.decode(raw, type=tuple[str, str])
        return Position(datetime.fromisoformat(created), row_id)
    except (binascii.Error, ValueError, msgspec.DecodeError, TypeError):
        raise Problem(422, "cursor is not one this server issued", field="cursor") from None


def page_request(query: dict[str, str] | object) -> PageRequest:
    get = getattr(query, "get")
    raw_limit = get("limit")
    limit = DEFAULT_PAGE_SIZE
    if raw_limit is not None:
        if raw_limit not in {str(size) for size in PAGE_SIZES}:
            raise Problem(422, f"limit must be one of {', '.join(map(str, PAGE_SIZES))}", field="limit")
        limit = int(raw_limit)
    cursor = get("cursor")
    return PageRequest(limit, decode_cursor(cursor) if cursor else None)
