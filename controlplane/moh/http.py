"""``/v1/tenants/{tenant_id}/music-on-hold``: the tenant's class and its uploaded files."""

from __future__ import annotations

import re

from aiohttp import web

from controlplane.http.body import json_response
from controlplane.http.caller import partner_id
from controlplane.http.problems import Problem
from controlplane.moh.services import MohServices

services_key = web.AppKey("moh_services", MohServices)
BASE = "/v1/tenants/{tenant_id}/music-on-hold"
_TENANT = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _tenant(request: web.Request) -> str:
    value = request.match_info["tenant_id"]
    if not _TENANT.fullmatch(value):
        raise Problem(404, "no such tenant", code="not_found")
    return value


async def get(request: web.Request) -> web.Response:
    return json_response(await request.app[services_key].get(partner_id(request), _tenant(request)))


async def put_file(request: web.Request) -> web.Response:
    data = await request.read()
    saved = await request.app[services_key].put(partner_id(request), _tenant(request),
                                                request.match_info["name"], data)
    return json_response(saved)


async def delete_file(request: web.Request) -> web.Response:
    await request.app[services_key].delete(partner_id(request), _tenant(request), request.match_info["name"])
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get(BASE, get)
    app.router.add_put(BASE + "/files/{name}", put_file)
    app.router.add_delete(BASE + "/files/{name}", delete_file)
