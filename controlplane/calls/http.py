"""HTTP routes of the calls capability (documented in openapi.yaml)."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator

from aiohttp import web

from cdr_ingest.classify import CallClass, Direction
from cdr_ingest.records import CallRecord, Disposition
from controlplane.calls import store
from controlplane.shared.pagination import ListPage
from controlplane.calls.services import CallServices
from controlplane.http.caller import partner_id
from controlplane.http.body import json_response, parse_instant, read_body
from controlplane.http.exports import stream_csv
from controlplane.http.problems import Problem
from controlplane.http.pagination import page_request

call_services = web.AppKey("call_services", CallServices)
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
CSV_COLUMNS = tuple(CallRecord.__struct_fields__)



def _choice(value: str | None, allowed: set[str], field: str) -> str | None:
    if value is not None and value not in allowed:
        raise Problem(422, f"{field} must be one of {', '.join(sorted(allowed))}", field=field)
    return value


def call_filter(partner: str, query: object) -> store.CallFilter:
    get = getattr(query, "get")
    return store.CallFilter(
        partner_id=partner, tenant_id=get("tenant_id"),
        direction=_choice(get("direction"), {d.value for d in Direction}, "direction"),
        call_class=_choice(get("class"), {c.value for c in CallClass}, "class"),
        disposition=_choice(get("disposition"), {d.value for d in Disposition}, "disposition"),
        started_from=parse_instant(get("started_from"), "started_from"),
        started_before=parse_instant(get("started_before"), "started_before"))


def _tenant_id(request: web.Request) -> str:
    value = request.match_info["tenant_id"]
    if not _ID.fullmatch(value):
        raise Problem(404, "no such tenant", code="not_found")
    return value


async def list_calls(request: web.Request) -> web.Response:
    services = request.app[call_services]
    items, cursor = await services.list_calls(call_filter(partner_id(request), request.query),
                                              page_request(request.query))
    return json_response(ListPage.of(items, cursor))


async def get_call(request: web.Request) -> web.Response:
    return json_response(await request.app[call_services].get_call(partner_id(request), request.match_info["call_id"]))


async def export_calls(request: web.Request) -> web.StreamResponse:
    """Rows are written as the database cursor yields them: memory stays flat at any size."""
    f = call_filter(partner_id(request), request.query)

    async def rows() -> AsyncGenerator[list[object], None]:
        async for record in request.app[call_services].export(f):
            yield [getattr(record, c) for c in CSV_COLUMNS]

    return await stream_csv(request, "calls", CSV_COLUMNS, rows())


async def tenant_usage(request: web.Request) -> web.Response:
    return json_response(await request.app[call_services].usage(partner_id(request), _tenant_id(request)))


async def put_retail_deck(request: web.Request) -> web.Response:
    partner = partner_id(request)
    try:
        text = (await request.read()).decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(422, "the rate deck must be UTF-8 CSV", field="body") from None
    return json_response(await request.app[call_services].put_retail_deck(partner, text))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/calls", list_calls)
    app.router.add_get("/v1/calls/export", export_calls)
    app.router.add_get(r"/v1/calls/{call_id:call_[0-9a-f]{24}}", get_call)
    app.router.add_get("/v1/tenants/{tenant_id}/usage", tenant_usage)
    app.router.add_put("/v1/rate-decks/retail", put_retail_deck)
