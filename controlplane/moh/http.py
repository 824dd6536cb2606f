"""``/v1/tenants/{tenant_id}/music-on-hold``: the tenant's class and its uploaded files."""

from __future__ import annotations

from aiohttp import web

from controlplane.http.body import json_response
from controlplane.http.caller import partner_id
from controlplane.http.paths import tenant_id
from controlplane.moh.services import MohServices

services_key = web.AppKey("moh_services", MohServices)
BASE = "/v1/tenants/{tenant_id}/music-on-hold"


async def get(request: web.Request) -> web.Response:
    return json_response(await request.app[services_key].get(partner_id(request), tenant_id(request)))


async def put_file(request: web.Request) -> web.Response:
    data = await request.read()
    saved = await request.app[services_key].put(partner_id(request), tenant_id(request),
                                                request.match_info["name"], data)
    return json_response(saved)


async def delete_file(request: web.Request) -> web.Response:
    await request.app[services_key].delete(partner_id(request), tenant_id(request),
                                           request.match_info["name"])
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get(BASE, get)
    app.router.add_put(BASE + "/files/{name}", put_file)
    app.router.add_delete(BASE + "/files/{name}", delete_file)
