"""Pagination read from a query string: ``limit``, ``cursor`` and ``sort`` (422s name the field).

The cursors, sorts and page requests themselves are ``controlplane.shared.pagination``,
which stores and services use without importing HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from controlplane.http.problems import Problem
from controlplane.shared.pagination import (ALL_SORTS, CREATED_SORTS, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE,
                                            MIN_PAGE_SIZE, PageRequest, Sort, decode_cursor)

__all__ = ["ALL_SORTS", "CREATED_SORTS", "PageRequest", "Sort", "newest_before", "page_limit", "page_request"]


def page_limit(query: Any, default: int = DEFAULT_PAGE_SIZE) -> int:
    """``limit``: an integer from 1 to 100, the page size of every list route."""
    raw = query.get("limit")
    if raw is None:
        return default
    if not (re.fullmatch(r"[0-9]{1,3}", raw) and MIN_PAGE_SIZE <= int(raw) <= MAX_PAGE_SIZE):
        raise Problem(422, f"limit must be an integer from {MIN_PAGE_SIZE} to {MAX_PAGE_SIZE}", field="limit")
    return int(raw)


def page_request(query: Any, sorts: Sequence[Sort] = ALL_SORTS) -> PageRequest:
    """``limit`` (1-100), ``cursor`` and ``sort`` from a query string."""
    limit = page_limit(query)
    raw_sort = query.get("sort", Sort.CREATED_ASC.value)
    if raw_sort not in {s.value for s in sorts}:
        raise Problem(422, f"sort must be one of {', '.join(s.value for s in sorts)}", field="sort")
    sort = Sort(raw_sort)
    cursor = query.get("cursor")
    return PageRequest(limit, decode_cursor(cursor, sort) if cursor else None, sort)


def newest_before(query: Any) -> tuple[datetime, str] | None:
    """``cursor`` of a newest-first list (voicemail messages, recordings): the (time, id) the
    page starts below; None for the first page."""
    cursor = query.get("cursor")
    if not cursor:
        return None
    position = decode_cursor(cursor, Sort.CREATED_DESC)
    return position.value, position.id
