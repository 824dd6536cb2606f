"""CSV exports of tenants and DIDs: every row the list's filters select, streamed.

The filters, sort and tenant scope are those of the matching list route; rows are
read a page at a time, so an export of any size holds one page in memory.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from controlplane.http.exports import stream_csv
from controlplane.http.pagination import page_request
from controlplane.shared.pagination import PageRequest, decode_cursor

TENANT_COLUMNS = ("id", "name", "sip_prefix", "status", "billing_email", "timezone", "default_cnam",
                  "extension_count", "did_count", "created_at", "updated_at", "cancelled_at")
DID_COLUMNS = ("id", "number", "status", "tenant_id", "extension_id", "cnam", "created_at", "updated_at")
_CHUNK = 100
Fetch = Callable[[PageRequest], Awaitable[tuple[list[Any], str | None]]]


async def _rows(fetch: Fetch, first: PageRequest) -> AsyncIterator[list[Any]]:
    page = first
    while True:
        items, cursor = await fetch(page)
        yield items
        if cursor is None:
            return
        page = PageRequest(_CHUNK, decode_cursor(cursor, page.sort), page.sort)


async def stream(request: web.Request, name: str, columns: Sequence[str], fetch: Fetch) -> web.StreamResponse:
    sort = page_request(request.query).sort

    async def rows() -> AsyncGenerator[list[object], None]:
        async for items in _rows(fetch, PageRequest(_CHUNK, None, sort)):
            for item in items:
                yield [getattr(item, c) for c in columns]

    return await stream_csv(request, name, columns, rows())
