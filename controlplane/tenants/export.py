"""CSV exports of tenants and DIDs: every row the list's filters select, streamed.

The filters, sort and tenant scope are those of the matching list route; rows are
read a page at a time, so an export of any size holds one page in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from controlplane.http.caller import partner_id, tenant_scope
from controlplane.tenants.pagination import PageRequest, decode_cursor, page_request

TENANT_COLUMNS = ("id", "name", "sip_prefix", "status", "billing_email", "timezone", "default_cnam",
                  "extension_count", "did_count", "created_at", "updated_at", "cancelled_at")
DID_COLUMNS = ("id", "number", "status", "tenant_id", "extension_id", "cnam", "created_at", "updated_at")
_CHUNK = 100
Fetch = Callable[[PageRequest], Awaitable[tuple[list[Any], str | None]]]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    # Spreadsheets run cells starting with these as formulas (CSV injection); a phone
    # number (+ and digits) is data and stays as it is.
    if text[:1] in ("=", "@", "\t", "\r") or (text[:1] in ("+", "-") and not text[1:].isdigit()):
        return "'" + text
    return text


async def _rows(fetch: Fetch, first: PageRequest) -> AsyncIterator[list[Any]]:
    page = first
    while True:
        items, cursor = await fetch(page)
        yield items
        if cursor is None:
            return
        page = PageRequest(_CHUNK, decode_cursor(cursor, page.sort), page.sort)


async def _stream(request: web.Request, name: str, columns: Sequence[str], fetch: Fetch) -> web.StreamResponse:
    sort = page_request(request.query).sort
    pages = _rows(fetch, PageRequest(_CHUNK, None, sort))
    first = await anext(pages)  # errors (a bad filter) surface before the headers go out
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{name}.csv"'})
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)

    async def flush(items: list[Any]) -> None:
        for item in items:
            writer.writerow([_cell(getattr(item, c)) for c in columns])
        await response.write(buffer.getvalue().encode())
        buffer.seek(0)
        buffer.truncate()

    await flush(first)
    async for items in pages:
        await flush(items)
    await response.write_eof()
    return response


async def tenants_csv(request: web.Request) -> web.StreamResponse:
    from controlplane.tenants.http import tenant_services

    q, partner, scope = request.query, partner_id(request), tenant_scope(request)
    services = request.app[tenant_services]
    return await _stream(request, "tenants", TENANT_COLUMNS, lambda page: services.list_tenants(
        partner, page, q.get("status"), q.get("q"), scope))


async def dids_csv(request: web.Request) -> web.StreamResponse:
    from controlplane.tenants.http import _flag, numbering_services

    q, partner, scope = request.query, partner_id(request), tenant_scope(request)
    services, assigned = request.app[numbering_services], _flag(request, "assigned")
    return await _stream(request, "dids", DID_COLUMNS, lambda page: services.list_dids(
        partner, page, q.get("tenant_id"), q.get("status"), assigned, q.get("q"), scope))
