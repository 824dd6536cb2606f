"""HTTP routes of the account capability (documented in openapi.yaml)."""

from __future__ import annotations

import re

from aiohttp import web

from controlplane.account.models import (CompActivationRequest, EnterprisePricesRequest, PlanChangeRequest,
                                         TierPriceChangeRequest, tier_prices)
from controlplane.account.services import AccountServices, now_utc
from controlplane.http.body import json_response, read_body
from controlplane.http.caller import partner_id
from controlplane.http.pagination import CREATED_SORTS, page_request
from controlplane.http.problems import Problem
from controlplane.shared.pagination import ListPage
from cdr_ingest.tiers import Tier

account_services = web.AppKey("account_services", AccountServices)
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.fullmatch(value):
        raise Problem(404, f"no such {name.removesuffix('_id')}", code="not_found")
    return value


async def get_account(request: web.Request) -> web.Response:
    return json_response(await request.app[account_services].account(partner_id(request)))


async def activate(request: web.Request) -> web.Response:
    if request.can_read_body and (await request.read()).strip() not in (b"", b"{}"):
        raise Problem(422, "this request takes no body", field="body")
    return json_response(await request.app[account_services].activate(partner_id(request)), 201)


async def change_plan(request: web.Request) -> web.Response:
    body = await read_body(request, PlanChangeRequest)
    change = await request.app[account_services].change_plan(partner_id(request), body)
    return json_response(change, 201 if change.applied else 200)


async def list_invoices(request: web.Request) -> web.Response:
    items, cursor = await request.app[account_services].invoices(partner_id(request),
                                                                 page_request(request.query, CREATED_SORTS))
    return json_response(ListPage.of(items, cursor))


async def get_invoice(request: web.Request) -> web.Response:
    return json_response(await request.app[account_services].invoice(partner_id(request),
                                                                     _id(request, "invoice_id")))


async def get_invoice_pdf(request: web.Request) -> web.Response:
    number, pdf = await request.app[account_services].invoice_pdf(partner_id(request), _id(request, "invoice_id"))
    return web.Response(body=pdf, content_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{number}.pdf"'})


# ---------------------------------------------------------------- platform


async def list_tier_prices(request: web.Request) -> web.Response:
    return json_response(ListPage.of(await request.app[account_services].tier_prices()))


async def schedule_tier_prices(request: web.Request) -> web.Response:
    body = await read_body(request, TierPriceChangeRequest)
    if body.effective_from.tzinfo is None:
        raise Problem(422, "effective_from: a date-time with its offset (e.g. 2027-01-01T00:00:00Z)",
                      field="effective_from")
    change = await request.app[account_services].schedule_tier_prices(
        tier_prices(body.tier, body.effective_from, body))
    return json_response(change, 201)


async def set_enterprise_prices(request: web.Request) -> web.Response:
    body = await read_body(request, EnterprisePricesRequest)
    if body.effective_from is not None and body.effective_from.tzinfo is None:
        raise Problem(422, "effective_from: a date-time with its offset", field="effective_from")
    prices = tier_prices(Tier.ENTERPRISE, body.effective_from or now_utc(), body)
    return json_response(await request.app[account_services].set_enterprise_prices(
        _id(request, "partner_id"), prices))


async def comp_activate(request: web.Request) -> web.Response:
    body = await read_body(request, CompActivationRequest)
    return json_response(await request.app[account_services].activate(
        _id(request, "partner_id"), comp_reason=body.reason, invoiced=body.invoiced), 201)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v1/account", get_account)
    r.add_post("/v1/account/activation", activate)
    r.add_post("/v1/account/plan-changes", change_plan)
    r.add_get("/v1/account/invoices", list_invoices)
    r.add_get("/v1/account/invoices/{invoice_id}", get_invoice)
    r.add_get("/v1/account/invoices/{invoice_id}/pdf", get_invoice_pdf)
    r.add_get("/v1/tier-prices", list_tier_prices)
    r.add_post("/v1/tier-prices", schedule_tier_prices)
    r.add_put("/v1/partners/{partner_id}/enterprise-prices", set_enterprise_prices)
    r.add_post("/v1/partners/{partner_id}/activation", comp_activate)
