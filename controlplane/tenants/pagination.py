"""Cursor pagination of the tenants capability: the RPC-wide one (controlplane/http/pagination.py)."""

from __future__ import annotations

from controlplane.http.pagination import (
    DEFAULT_PAGE_SIZE, PAGE_SIZES, PageRequest, Position, Sort, decode_cursor, encode_cursor, keyset, next_page,
    page_request)

__all__ = ["DEFAULT_PAGE_SIZE", "PAGE_SIZES", "PageRequest", "Position", "Sort", "decode_cursor",
           "encode_cursor", "keyset", "next_page", "page_request"]
