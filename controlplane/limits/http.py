"""HTTP routes of the limits capability (documented in openapi.yaml)."""

from __future__ import annotations

import re

from aiohttp import web

from controlplane.http.caller import partner_id, require_tenant
from controlplane.http.body import json_response, read_body
from controlplane.http.problems import Problem
from controlplane.limits.models import LimitsBody
from controlplane.limits.services import LimitServices

limit_services = web.AppKey("limit_services", LimitServices)
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")



def _tenant(request: web.Request) -> str:
    value = request.match_info["tenant_id"]
    if not _ID.fullmatch(value):
        raise Problem(404, "no such tenant", code="not_found")
    require_tenant(request, value)
    return value



async def get_limits(request: web.Request) -> web.Response:
    return json_response(await request.app[limit_services].get(partner_id(request), _tenant(request)))


async def put_limits(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    return json_response(await request.app[limit_services].put(partner_id(request), tenant, await read_body(request, LimitsBody)))


async def reset_limits(request: web.Request) -> web.Response:
    return json_response(await request.app[limit_services].reset(partner_id(request), _tenant(request)))


async def usage(request: web.Request) -> web.Response:
    return json_response(await request.app[limit_services].usage(partner_id(request), _tenant(request)))


async def get_defaults(request: web.Request) -> web.Response:
    return json_response(await request.app[limit_services].get_defaults(partner_id(request)))


async def put_defaults(request: web.Request) -> web.Response:
    partner = partner_id(request)
    return json_response(await request.app[limit_services].put_defaults(partner, await read_body(request, LimitsBody)))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/tenants/{tenant_id}/limits", get_limits)
    app.router.add_put("/v1/tenants/{tenant_id}/limits", put_limits)
    app.router.add_post("/v1/tenants/{tenant_id}/limits/reset", reset_limits)
    app.router.add_get("/v1/tenants/{tenant_id}/limits/usage", usage)
    app.router.add_get("/v1/limit-defaults", get_defaults)
    app.router.add_put("/v1/limit-defaults", put_defaults)
