"""HTTP routes of the limits capability (documented in openapi.yaml)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from controlplane.http.caller import partner_id, require_tenant
from controlplane.http.problems import Problem
from controlplane.limits.models import LimitsBody
from controlplane.limits.services import LimitServices

limit_services = web.AppKey("limit_services", LimitServices)
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_AT = re.compile(r"unknown field `([^`]+)`|at `\$\.([A-Za-z_][A-Za-z0-9_.]*)")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json")


def _tenant(request: web.Request) -> str:
    value = request.match_info["tenant_id"]
    if not _ID.fullmatch(value):
        raise Problem(404, "no such tenant", code="not_found")
    require_tenant(request, value)
    return value


async def _body(request: web.Request) -> LimitsBody:
    try:
        return msgspec.json.decode(await request.read(), type=LimitsBody)
    except msgspec.ValidationError as exc:
        found = _AT.search(str(exc))
        raise Problem(422, str(exc), field=(found.group(1) or found.group(2)) if found else "body") from None
    except msgspec.DecodeError as exc:
        raise Problem(422, str(exc), field="body") from None


async def get_limits(request: web.Request) -> web.Response:
    return _json(await request.app[limit_services].get(partner_id(request), _tenant(request)))


async def put_limits(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    return _json(await request.app[limit_services].put(partner_id(request), tenant, await _body(request)))


async def reset_limits(request: web.Request) -> web.Response:
    return _json(await request.app[limit_services].reset(partner_id(request), _tenant(request)))


async def usage(request: web.Request) -> web.Response:
    return _json(await request.app[limit_services].usage(partner_id(request), _tenant(request)))


async def get_defaults(request: web.Request) -> web.Response:
    return _json(await request.app[limit_services].get_defaults(partner_id(request)))


async def put_defaults(request: web.Request) -> web.Response:
    partner = partner_id(request)
    return _json(await request.app[limit_services].put_defaults(partner, await _body(request)))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/tenants/{tenant_id}/limits", get_limits)
    app.router.add_put("/v1/tenants/{tenant_id}/limits", put_limits)
    app.router.add_post("/v1/tenants/{tenant_id}/limits/reset", reset_limits)
    app.router.add_get("/v1/tenants/{tenant_id}/limits/usage", usage)
    app.router.add_get("/v1/limit-defaults", get_defaults)
    app.router.add_put("/v1/limit-defaults", put_defaults)
