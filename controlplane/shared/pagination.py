"""Opaque cursors over (sort column, id): stable when rows are inserted meanwhile.

A cursor carries its sort, so a cursor of one ordering is refused (422) by another.
Stores build their keyset SQL from a ``PageRequest``; reading one from a query string
is HTTP's (``controlplane.http.pagination.page_request``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

import msgspec

from controlplane.shared.problems import Problem

MIN_PAGE_SIZE, MAX_PAGE_SIZE = 1, 100  # every list route (docs/api.md)
DEFAULT_PAGE_SIZE = 20


class Keyed(Protocol):
    """What a listed item has: the id that breaks ties in the keyset order."""

    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=Keyed)
I = TypeVar("I")


class ListPage(msgspec.Struct, Generic[I], kw_only=True):
    """The one envelope of every list route (docs/api.md): the page's ``items``, the
    ``cursor`` to pass back for the next page and whether one has more items now.

    A route that lists everything at once answers ``next_cursor: null, has_more: false``;
    the event feed always gives a cursor (its position), so ``has_more`` is what ends a loop.
    """

    items: list[I]
    next_cursor: str | None = None
    has_more: bool = False

    @classmethod
    def of(cls, items: list[I], cursor: str | None = None) -> ListPage[I]:
        """A keyset page: more follow exactly when there is a next cursor."""
        return cls(items=items, next_cursor=cursor, has_more=cursor is not None)


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
    return items[:page.limit], encode_cursor(getattr(last, page.sort.column), last.id, page.sort)
