"""``/v1/tenants/{tenant_id}/ring-groups``: ring groups of a tenant (documented in openapi.yaml)."""

from __future__ import annotations

from aiohttp import web

from controlplane.http.body import json_response, read_body
from controlplane.http.caller import partner_id
from controlplane.http.paths import UUID, path_id, tenant_id
from controlplane.ring_groups.models import RingGroupCreate, RingGroupUpdate
from controlplane.ring_groups.services import RingGroupServices
from controlplane.shared.pagination import ListPage

services_key = web.AppKey("ring_group_services", RingGroupServices)
BASE = "/v1/tenants/{tenant_id}/ring-groups"


def _group(request: web.Request) -> str:
    return path_id(request, "ring_group_id", UUID, "ring group")


async def create(request: web.Request) -> web.Response:
    body = await read_body(request, RingGroupCreate)
    group = await request.app[services_key].create(partner_id(request), tenant_id(request), body)
    return json_response(group, 201)


async def list_groups(request: web.Request) -> web.Response:
    items = await request.app[services_key].list(partner_id(request), tenant_id(request))
    return json_response(ListPage.of(items, None))


async def get(request: web.Request) -> web.Response:
    return json_response(await request.app[services_key].get(partner_id(request), tenant_id(request),
                                                             _group(request)))


async def update(request: web.Request) -> web.Response:
    body = await read_body(request, RingGroupUpdate)
    return json_response(await request.app[services_key].update(partner_id(request), tenant_id(request),
                                                                _group(request), body))


async def delete(request: web.Request) -> web.Response:
    await request.app[services_key].delete(partner_id(request), tenant_id(request), _group(request))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    one = BASE + "/{ring_group_id}"
    app.router.add_post(BASE, create)
    app.router.add_get(BASE, list_groups)
    app.router.add_get(one, get)
    app.router.add_patch(one, update)
    app.router.add_delete(one, delete)
