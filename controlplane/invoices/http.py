"""HTTP routes of tenant invoices and tax jurisdictions (documented in openapi.yaml)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from controlplane.http.body import json_response, parse_instant, read_body
from controlplane.http.caller import partner_id
from controlplane.http.pagination import page_limit
from controlplane.http.problems import Problem
from controlplane.invoices import store
from controlplane.invoices.models import InvoiceStatus
from controlplane.invoices.services import InvoiceServices
from controlplane.invoices.views import (JurisdictionBody, NumberingBody, OffCycleBody, PendingChargeBody,
                                         TaxAssignmentBody)
from controlplane.shared.pagination import ListPage, Sort, decode_cursor
from controlplane.shared.problems import FieldError

invoice_services = web.AppKey("invoice_services", InvoiceServices)
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NUMBER = re.compile(r"^[A-Za-z0-9._/-]{1,40}$")


def filters(query: Any) -> store.Filters:
    """Every filter checked; one 422 names each one at fault."""
    errors: list[FieldError] = []

    def bad(field: str, message: str) -> None:
        errors.append(FieldError(field, f"{field}: {message}"))

    status = query.get("status")
    if status is not None and status not in {s.value for s in InvoiceStatus}:
        bad("status", f"one of {', '.join(s.value for s in InvoiceStatus)}")
    tenant = query.get("tenant")
    if tenant is not None and not _ID.match(tenant):
        bad("tenant", "a tenant id or SIP prefix")
    number = query.get("number")
    if number is not None and not _NUMBER.match(number):
        bad("number", "an invoice number")
    instants: dict[str, Any] = {}
    for name in ("from", "to"):
        try:
            instants[name] = parse_instant(query.get(name), name)
        except Problem as exc:
            bad(name, exc.detail.removeprefix(f"{name} "))
    if instants.get("from") and instants.get("to") and instants["to"] <= instants["from"]:
        bad("to", "after from")
    if errors:
        raise Problem(422, "; ".join(e.message for e in errors), errors=errors)
    return store.Filters(status=InvoiceStatus(status) if status else None, tenant=tenant,
                         issued_from=instants.get("from"), issued_to=instants.get("to"), number=number)


def _id(request: web.Request, name: str = "id") -> str:
    value = request.match_info[name]
    if not _ID.match(value):
        raise Problem(404, f"no such resource {value!r}", code="not_found")
    return value


async def list_invoices(request: web.Request) -> web.Response:
    f = filters(request.query)
    limit = page_limit(request.query)
    cursor = request.query.get("cursor")
    after = None
    if cursor:
        position = decode_cursor(cursor, Sort.CREATED_DESC)
        after = (position.value, position.id)
    items, next_cursor = await request.app[invoice_services].page(partner_id(request), f, limit, after)
    return json_response(ListPage.of(items, next_cursor))


async def invoice_stats(request: web.Request) -> web.Response:
    return json_response(await request.app[invoice_services].stats(partner_id(request), filters(request.query)))


async def get_invoice(request: web.Request) -> web.Response:
    return json_response(await request.app[invoice_services].get(partner_id(request), _id(request)))


async def create_invoice(request: web.Request) -> web.Response:
    body = await read_body(request, OffCycleBody)
    return json_response(await request.app[invoice_services].create_off_cycle(partner_id(request), body), 201)


async def issue_invoice(request: web.Request) -> web.Response:
    return json_response(await request.app[invoice_services].issue(partner_id(request), _id(request)))


async def void_invoice(request: web.Request) -> web.Response:
    return json_response(await request.app[invoice_services].void(partner_id(request), _id(request)))


async def get_numbering(request: web.Request) -> web.Response:
    return json_response(await request.app[invoice_services].numbering(partner_id(request)))


async def put_numbering(request: web.Request) -> web.Response:
    body = await read_body(request, NumberingBody)
    return json_response(await request.app[invoice_services].set_prefix(partner_id(request), body.prefix))


async def list_jurisdictions(request: web.Request) -> web.Response:
    return json_response(ListPage.of(await request.app[invoice_services].jurisdictions(partner_id(request))))


async def create_jurisdiction(request: web.Request) -> web.Response:
    body = await read_body(request, JurisdictionBody)
    return json_response(await request.app[invoice_services].create_jurisdiction(partner_id(request), body), 201)


async def get_jurisdiction(request: web.Request) -> web.Response:
    return json_response(await request.app[invoice_services].jurisdiction(partner_id(request), _id(request)))


async def put_jurisdiction(request: web.Request) -> web.Response:
    body = await read_body(request, JurisdictionBody)
    return json_response(await request.app[invoice_services].update_jurisdiction(
        partner_id(request), _id(request), body))


async def delete_jurisdiction(request: web.Request) -> web.Response:
    await request.app[invoice_services].delete_jurisdiction(partner_id(request), _id(request))
    return web.Response(status=204)


async def get_tenant_tax(request: web.Request) -> web.Response:
    return json_response(await request.app[invoice_services].tenant_tax(partner_id(request), _id(request)))


async def put_tenant_tax(request: web.Request) -> web.Response:
    body = await read_body(request, TaxAssignmentBody)
    return json_response(await request.app[invoice_services].put_tenant_tax(
        partner_id(request), _id(request), body.jurisdiction_id))


async def add_charge(request: web.Request) -> web.Response:
    body = await read_body(request, PendingChargeBody)
    item, created = await request.app[invoice_services].add_charge(partner_id(request), _id(request), body)
    return json_response(item, 201 if created else 200)


async def pending_items(request: web.Request) -> web.Response:
    return json_response(ListPage.of(await request.app[invoice_services].pending(partner_id(request), _id(request))))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/invoices", list_invoices)
    app.router.add_post("/v1/invoices", create_invoice)
    app.router.add_get("/v1/invoices/stats", invoice_stats)
    app.router.add_get("/v1/invoice-numbering", get_numbering)
    app.router.add_put("/v1/invoice-numbering", put_numbering)
    app.router.add_get("/v1/invoices/{id}", get_invoice)
    app.router.add_post("/v1/invoices/{id}/issue", issue_invoice)
    app.router.add_post("/v1/invoices/{id}/void", void_invoice)
    app.router.add_get("/v1/tax-jurisdictions", list_jurisdictions)
    app.router.add_post("/v1/tax-jurisdictions", create_jurisdiction)
    app.router.add_get("/v1/tax-jurisdictions/{id}", get_jurisdiction)
    app.router.add_put("/v1/tax-jurisdictions/{id}", put_jurisdiction)
    app.router.add_delete("/v1/tax-jurisdictions/{id}", delete_jurisdiction)
    app.router.add_get("/v1/tenants/{id}/tax-jurisdiction", get_tenant_tax)
    app.router.add_put("/v1/tenants/{id}/tax-jurisdiction", put_tenant_tax)
    app.router.add_get("/v1/tenants/{id}/invoice-items", pending_items)
    app.router.add_post("/v1/tenants/{id}/invoice-items", add_charge)
