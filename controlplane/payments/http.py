"""``/v1/account/payment-methods``: the partner's saved cards (ids from Stripe.js only)."""

from __future__ import annotations

from aiohttp import web

from controlplane.http.body import json_response, read_body
from controlplane.http.caller import partner_id
from controlplane.payments.models import PaymentMethodAttach
from controlplane.payments.services import PaymentMethods, check_method_id
from controlplane.shared.pagination import ListPage

services_key = web.AppKey("payments_methods", PaymentMethods)
BASE = "/v1/account/payment-methods"


def _method_id(request: web.Request) -> str:
    return check_method_id(request.match_info["method_id"], "method_id")


async def attach(request: web.Request) -> web.Response:
    body = await read_body(request, PaymentMethodAttach)
    saved, created = await request.app[services_key].attach(partner_id(request), body.payment_method_id)
    return json_response(saved, 201 if created else 200)


async def list_methods(request: web.Request) -> web.Response:
    items = await request.app[services_key].list_methods(partner_id(request))
    return json_response(ListPage.of(items, None))


async def make_default(request: web.Request) -> web.Response:
    return json_response(await request.app[services_key].make_default(partner_id(request), _method_id(request)))


async def delete(request: web.Request) -> web.Response:
    await request.app[services_key].delete(partner_id(request), _method_id(request))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    one = BASE + "/{method_id}"
    app.router.add_post(BASE, attach)
    app.router.add_get(BASE, list_methods)
    app.router.add_post(one + "/default", make_default)
    app.router.add_delete(one, delete)
