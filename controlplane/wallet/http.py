"""HTTP routes of the wallet (documented in openapi.yaml)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from aiohttp import web

from controlplane.http.body import json_response, parse_instant, read_body
from controlplane.http.caller import PARTNER_HEADER, caller_key, partner_id
from controlplane.http.exports import stream_csv
from controlplane.http.idempotency import HEADER as IDEMPOTENCY_HEADER
from controlplane.http.pagination import page_limit
from controlplane.http.problems import Problem
from controlplane.shared.pagination import ListPage, PageRequest, decode_cursor
from controlplane.wallet import store
from controlplane.wallet.models import (ENTRY_CSV_COLUMNS, AdjustmentBody, AutoRechargeBody, CreditBody, EntryKind,
                                        TopUpBody)
from controlplane.wallet.services import WalletServices

wallet_services = web.AppKey("wallet_services", WalletServices)
_KINDS = {k.value for k in EntryKind}


def entry_filter(partner: str, query: object) -> store.EntryFilter:
    get = getattr(query, "get")
    getall = getattr(query, "getall")
    kinds: list[str] = [k for raw in getall("kind", []) for k in raw.split(",") if k]
    unknown = sorted(set(kinds) - _KINDS)
    if unknown:
        raise Problem(422, f"kind: one or more of {', '.join(sorted(_KINDS))} (not {', '.join(unknown)})",
                      field="kind")
    start, end = parse_instant(get("from"), "from"), parse_instant(get("to"), "to")
    if start is not None and end is not None and end <= start:
        raise Problem(422, "to: after from", field="to")
    tenant = get("tenant_id")
    if tenant is not None and not (1 <= len(tenant) <= 64 and tenant.replace("_", "").replace("-", "").isalnum()):
        raise Problem(422, "tenant_id: 1-64 letters, digits, _ or -", field="tenant_id")
    return store.EntryFilter(partner_id=partner, kinds=tuple(sorted(set(kinds))), created_from=start,
                             created_before=end, tenant_id=tenant)


def _wants_csv(request: web.Request) -> bool:
    fmt = request.query.get("format")
    if fmt is not None and fmt not in ("json", "csv"):
        raise Problem(422, "format: json or csv", field="format")
    return fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("Accept", ""))


async def get_wallet(request: web.Request) -> web.Response:
    return json_response(await request.app[wallet_services].wallet(partner_id(request)))


async def list_entries(request: web.Request) -> web.StreamResponse:
    """Newest first in pages (cursor), or every matching entry as CSV, oldest first, streamed."""
    f = entry_filter(partner_id(request), request.query)
    services = request.app[wallet_services]
    if _wants_csv(request):
        async def rows() -> AsyncGenerator[list[object], None]:
            async for entry in services.export(f):
                yield [getattr(entry, c) for c in ENTRY_CSV_COLUMNS]

        return await stream_csv(request, "wallet-entries", ENTRY_CSV_COLUMNS, rows())
    cursor = request.query.get("cursor")
    page = PageRequest(page_limit(request.query), decode_cursor(cursor) if cursor else None)
    items, next_cursor = await services.entries(f, page)
    return json_response(ListPage.of(items, next_cursor))


async def top_up(request: web.Request) -> web.Response:
    """201 with the credit; 200 when this Idempotency-Key topped up already."""
    body = await read_body(request, TopUpBody)
    view, created = await request.app[wallet_services].top_up(partner_id(request), body.amount_micros,
                                                              request.headers.get(IDEMPOTENCY_HEADER))
    return json_response(view, 201 if created else 200)


async def adjust(request: web.Request) -> web.Response:
    """Platform only (x-scope): the partner from the body, else X-Partner-Id."""
    body = await read_body(request, AdjustmentBody)
    partner = body.partner_id or request[caller_key].partner_id
    if partner is None:
        raise Problem(422, f"partner_id: required (or the {PARTNER_HEADER} header)", field="partner_id")
    view, created = await request.app[wallet_services].adjust(partner, body)
    return json_response(view, 201 if created else 200)


async def credit(request: web.Request) -> web.Response:
    """Platform only (x-scope): 201 for a new credit, 200 when the reference was credited already."""
    body = await read_body(request, CreditBody)
    view, created = await request.app[wallet_services].credit(partner_id(request), body)
    return json_response(view, 201 if created else 200)


async def put_auto_recharge(request: web.Request) -> web.Response:
    body = await read_body(request, AutoRechargeBody)
    return json_response(await request.app[wallet_services].put_auto_recharge(partner_id(request), body))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/wallet", get_wallet)
    app.router.add_get("/v1/wallet/entries", list_entries)
    app.router.add_post("/v1/wallet/top-ups", top_up)
    app.router.add_post("/v1/wallet/adjustments", adjust)
    app.router.add_post("/v1/wallet/credits", credit)
    app.router.add_put("/v1/wallet/auto-recharge", put_auto_recharge)
