"""HTTP routes of the calls capability (documented in openapi.yaml)."""

from __future__ import annotations

import csv
import io
import re

from aiohttp import web

from cdr_ingest.records import CallRecord
from controlplane.calls.models import BillingProfileBody, CallPage
from controlplane.calls.services import CallServices, call_filter
from controlplane.http.caller import partner_id
from controlplane.http.body import json_response, read_body
from controlplane.http.problems import Problem
from controlplane.tenants.pagination import page_request

call_services = web.AppKey("call_services", CallServices)
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
CSV_COLUMNS = tuple(CallRecord.__struct_fields__)



def _tenant_id(request: web.Request) -> str:
    value = request.match_info["tenant_id"]
    if not _ID.fullmatch(value):
        raise Problem(404, "no such tenant", code="not_found")
    return value


async def list_calls(request: web.Request) -> web.Response:
    services = request.app[call_services]
    items, cursor = await services.list_calls(call_filter(partner_id(request), request.query),
                                              page_request(request.query))
    return json_response(CallPage(items=items, next_cursor=cursor))


async def get_call(request: web.Request) -> web.Response:
    return json_response(await request.app[call_services].get_call(partner_id(request), request.match_info["call_id"]))


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(map(str, value))
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[union-attr]
    return value


async def export_calls(request: web.Request) -> web.StreamResponse:
    """Rows are written as the database cursor yields them: memory stays flat at any size."""
    f = call_filter(partner_id(request), request.query)
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                           "Content-Disposition": 'attachment; filename="calls.csv"'})
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    async for record in request.app[call_services].export(f):
        writer.writerow([_csv_value(getattr(record, c)) for c in CSV_COLUMNS])
        if buffer.tell() > 64 * 1024:
            await response.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


async def tenant_usage(request: web.Request) -> web.Response:
    return json_response(await request.app[call_services].usage(partner_id(request), _tenant_id(request)))


async def put_profile(request: web.Request) -> web.Response:
    body = await read_body(request, BillingProfileBody)
    return json_response(await request.app[call_services].put_profile(partner_id(request), _tenant_id(request), body))


async def get_profile(request: web.Request) -> web.Response:
    return json_response(await request.app[call_services].get_profile(partner_id(request), _tenant_id(request)))


async def put_retail_deck(request: web.Request) -> web.Response:
    partner = partner_id(request)
    try:
        text = (await request.read()).decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(422, "the rate deck must be UTF-8 CSV", field="body") from None
    return json_response(await request.app[call_services].put_retail_deck(partner, text))


async def get_wallet(request: web.Request) -> web.Response:
    return json_response(await request.app[call_services].wallet(partner_id(request)))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/calls", list_calls)
    app.router.add_get("/v1/calls/export", export_calls)
    app.router.add_get(r"/v1/calls/{call_id:call_[0-9a-f]{24}}", get_call)
    app.router.add_get("/v1/tenants/{tenant_id}/usage", tenant_usage)
    app.router.add_get("/v1/tenants/{tenant_id}/billing-profile", get_profile)
    app.router.add_put("/v1/tenants/{tenant_id}/billing-profile", put_profile)
    app.router.add_put("/v1/rate-decks/retail", put_retail_deck)
    app.router.add_get("/v1/wallet", get_wallet)
