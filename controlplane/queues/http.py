"""``/v1/tenants/{tenant_id}/queues``: call queues of a tenant and their statistics."""

from __future__ import annotations

from aiohttp import web

from controlplane.http.body import json_response, parse_instant, read_body
from controlplane.http.caller import partner_id
from controlplane.http.paths import UUID, path_id, tenant_id
from controlplane.queues.models import QueueCreate, QueueUpdate
from controlplane.queues.services import QueueServices
from controlplane.shared.pagination import ListPage

services_key = web.AppKey("queue_services", QueueServices)
BASE = "/v1/tenants/{tenant_id}/queues"


def _queue(request: web.Request) -> str:
    return path_id(request, "queue_id", UUID)


async def create(request: web.Request) -> web.Response:
    body = await read_body(request, QueueCreate)
    return json_response(await request.app[services_key].create(partner_id(request), tenant_id(request), body),
                         201)


async def list_queues(request: web.Request) -> web.Response:
    items = await request.app[services_key].list(partner_id(request), tenant_id(request))
    return json_response(ListPage.of(items, None))


async def get(request: web.Request) -> web.Response:
    return json_response(await request.app[services_key].get(partner_id(request), tenant_id(request),
                                                             _queue(request)))


async def update(request: web.Request) -> web.Response:
    body = await read_body(request, QueueUpdate)
    return json_response(await request.app[services_key].update(partner_id(request), tenant_id(request),
                                                                _queue(request), body))


async def delete(request: web.Request) -> web.Response:
    await request.app[services_key].delete(partner_id(request), tenant_id(request), _queue(request))
    return web.Response(status=204)


async def stats(request: web.Request) -> web.Response:
    since = parse_instant(request.query.get("since"), "since")
    return json_response(await request.app[services_key].stats(partner_id(request), tenant_id(request),
                                                               _queue(request), since))


def add_routes(app: web.Application) -> None:
    one = BASE + "/{queue_id}"
    app.router.add_post(BASE, create)
    app.router.add_get(BASE, list_queues)
    app.router.add_get(one, get)
    app.router.add_patch(one, update)
    app.router.add_delete(one, delete)
    app.router.add_get(one + "/stats", stats)
