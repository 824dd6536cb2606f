"""Routes of collection: the partner's Stripe mode, tenants' cards, invoice payments and refunds."""

from __future__ import annotations

from aiohttp import web

from controlplane.collection.models import ManualPayment, RefundRequest, StripeModeUpdate
from controlplane.collection.refunds import Refunds
from controlplane.collection.services import Collection, check_method_id
from controlplane.http.body import json_response, read_body
from controlplane.http.caller import partner_id, require_tenant
from controlplane.payments.models import PaymentMethodAttach
from controlplane.shared.pagination import ListPage

services_key = web.AppKey("collection_services", Collection)
refunds_key = web.AppKey("collection_refunds", Refunds)
METHODS = "/v1/tenants/{tenant_id}/payment-methods"


def _tenant(request: web.Request) -> str:
    tenant_id = request.match_info["tenant_id"]
    require_tenant(request, tenant_id)
    return tenant_id


async def get_mode(request: web.Request) -> web.Response:
    return json_response(await request.app[services_key].get_mode(partner_id(request)))


async def put_mode(request: web.Request) -> web.Response:
    body = await read_body(request, StripeModeUpdate)
    return json_response(await request.app[services_key].set_mode(partner_id(request), body))


async def setup_intent(request: web.Request) -> web.Response:
    view = await request.app[services_key].setup_intent(partner_id(request), _tenant(request))
    return json_response(view, 201)


async def attach(request: web.Request) -> web.Response:
    tenant_id = _tenant(request)
    body = await read_body(request, PaymentMethodAttach)  # the same body as a partner's card
    saved, created = await request.app[services_key].attach(partner_id(request), tenant_id, body.payment_method_id)
    return json_response(saved, 201 if created else 200)


async def list_methods(request: web.Request) -> web.Response:
    items = await request.app[services_key].list_methods(partner_id(request), _tenant(request))
    return json_response(ListPage.of(items, None))


async def make_default(request: web.Request) -> web.Response:
    tenant_id = _tenant(request)
    method_id = check_method_id(request.match_info["method_id"], "method_id")
    return json_response(await request.app[services_key].make_default(partner_id(request), tenant_id, method_id))


async def delete_method(request: web.Request) -> web.Response:
    tenant_id = _tenant(request)
    method_id = check_method_id(request.match_info["method_id"], "method_id")
    await request.app[services_key].delete(partner_id(request), tenant_id, method_id)
    return web.Response(status=204)


async def _invoice_tenant(request: web.Request) -> str:
    """The invoice id, once the caller may see its tenant (a tenant-scoped key: 404 otherwise)."""
    invoice_id = request.match_info["invoice_id"]
    invoice = await request.app[services_key].invoice(partner_id(request), invoice_id)
    require_tenant(request, invoice.tenant_id)
    return invoice_id


async def record_payment(request: web.Request) -> web.Response:
    body = await read_body(request, ManualPayment)
    invoice_id = await _invoice_tenant(request)
    result, created = await request.app[services_key].manual_payment(partner_id(request), invoice_id, body)
    return json_response(result, 201 if created else 200)


async def list_payments(request: web.Request) -> web.Response:
    invoice_id = await _invoice_tenant(request)
    items = await request.app[services_key].payments(partner_id(request), invoice_id)
    return json_response(ListPage.of(items, None))


async def refund(request: web.Request) -> web.Response:
    body = await read_body(request, RefundRequest)
    invoice_id = await _invoice_tenant(request)
    note, created = await request.app[refunds_key].refund(partner_id(request), invoice_id, body)
    return json_response(note, 201 if created else 200)


async def list_refunds(request: web.Request) -> web.Response:
    invoice_id = await _invoice_tenant(request)
    items = await request.app[refunds_key].list(partner_id(request), invoice_id)
    return json_response(ListPage.of(items, None))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/account/stripe", get_mode)
    app.router.add_put("/v1/account/stripe", put_mode)
    app.router.add_post(METHODS + "/setup-intent", setup_intent)
    app.router.add_post(METHODS, attach)
    app.router.add_get(METHODS, list_methods)
    app.router.add_post(METHODS + "/{method_id}/default", make_default)
    app.router.add_delete(METHODS + "/{method_id}", delete_method)
    app.router.add_post("/v1/invoices/{invoice_id}/payments", record_payment)
    app.router.add_get("/v1/invoices/{invoice_id}/payments", list_payments)
    app.router.add_post("/v1/invoices/{invoice_id}/refunds", refund)
    app.router.add_get("/v1/invoices/{invoice_id}/refunds", list_refunds)
