"""Opaque cursors over (sort column, id): stable when rows are inserted meanwhile.

A cursor carries its sort, so a cursor of one ordering is refused (422) by another.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import msgspec

from controlplane.http.problems import Problem

PAGE_SIZES = (10, 20, 50, 100)
DEFAULT_PAGE_SIZE = 20
T = TypeVar("T")


class Sort(StrEnum):
    CREATED_ASC = "created_at"
    CREATED_DESC = "-created_at"
    UPDATED_ASC = "updated_at"
    UPDATED_DESC = "-updated_at"

    @property
    def column(self) -> str:
        return self.value.lstrip("-")

    @property
    def descending(self) -> bool:
        return self.value.startswith("-")


ALL_SORTS: tuple[Sort, ...] = tuple(Sort)
CREATED_SORTS: tuple[Sort, ...] = (Sort.CREATED_ASC, Sort.CREATED_DESC)


@dataclass(frozen=True, slots=True)
class Position:
    value: datetime
    id: str

    @property
    def created_at(self) -> datetime:  # the name older callers used
        return self.value


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    after: Position | None
    sort: Sort = Sort.CREATED_ASC


def encode_cursor(value: datetime, row_id: str, sort: Sort = Sort.CREATED_ASC) -> str:
    raw = msgspec.json.encode([sort.value, value.isoformat(), row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort = Sort.CREATED_ASC) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort_name, value, row_id = msgspec.json.decode(raw, type=tuple[str, str, str])
        position = Position(datetime.fromisoformat(value), row_id)
    except (binascii.Error, ValueError, msgspec.DecodeError, TypeError):
        raise Problem(422, "cursor is not one this server issued", field="cursor") from None
    if position.value.tzinfo is None:
        raise Problem(422, "cursor is not one this server issued", field="cursor")
    if sort_name != sort.value:
        raise Problem(422, f"this cursor belongs to sort={sort_name}", field="cursor")
    return position


def page_request(query: Any, sorts: Sequence[Sort] = ALL_SORTS) -> PageRequest:
    """``limit`` (10/20/50/100), ``cursor`` and ``sort`` from a query string."""
    raw_limit = query.get("limit")
    limit = DEFAULT_PAGE_SIZE
    if raw_limit is not None:
        if raw_limit not in {str(size) for size in PAGE_SIZES}:
            raise Problem(422, f"limit must be one of {', '.join(map(str, PAGE_SIZES))}", field="limit")
        limit = int(raw_limit)
    raw_sort = query.get("sort", Sort.CREATED_ASC.value)
    if raw_sort not in {s.value for s in sorts}:
        raise Problem(422, f"sort must be one of {', '.join(s.value for s in sorts)}", field="sort")
    sort = Sort(raw_sort)
    cursor = query.get("cursor")
    return PageRequest(limit, decode_cursor(cursor, sort) if cursor else None, sort)


def keyset(page: PageRequest, alias: str, args: list[object]) -> tuple[str | None, str]:
    """(the after-cursor condition or None, ``ORDER BY ... LIMIT``), appending to ``args``."""
    column, op, direction = f"{alias}{page.sort.column}", "<" if page.sort.descending else ">", \
        "DESC" if page.sort.descending else "ASC"
    condition = None
    if page.after is not None:
        args.extend([page.after.value, page.after.id])
        condition = f"({column}, {alias}id) {op} (${len(args) - 1}, ${len(args)})"
    args.append(page.limit + 1)
    return condition, f"ORDER BY {column} {direction}, {alias}id {direction} LIMIT ${len(args)}"


def next_page(items: list[T], page: PageRequest | int) -> tuple[list[T], str | None]:
    """The page's items and the cursor of the next page (None on the last one)."""
    if isinstance(page, int):
        page = PageRequest(page, None)
    if len(items) <= page.limit:
        return items, None
    last = items[page.limit - 1]
    return items[:page.limit], encode_cursor(getattr(last, page.sort.column), last.id, page.sort)  # type: ignore[attr-defined]
