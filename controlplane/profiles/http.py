"""HTTP routes of billing profiles (documented in openapi.yaml)."""

from __future__ import annotations

import re

from aiohttp import web

from controlplane.http.body import json_response, read_body
from controlplane.http.caller import partner_id
from controlplane.http.problems import Problem
from controlplane.profiles.models import AssignmentBody, ProfileBody
from controlplane.profiles.services import ProfileServices
from controlplane.shared.pagination import ListPage

profile_services = web.AppKey("profile_services", ProfileServices)
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _id(request: web.Request, name: str, what: str) -> str:
    value = request.match_info[name]
    if not _ID.fullmatch(value):
        raise Problem(404, f"no such {what}", code="not_found")
    return value


async def list_profiles(request: web.Request) -> web.Response:
    items = await request.app[profile_services].list_profiles(partner_id(request))
    return json_response(ListPage.of(items, None))


async def create_profile(request: web.Request) -> web.Response:
    body = await read_body(request, ProfileBody)
    return json_response(await request.app[profile_services].create_profile(partner_id(request), body), 201)


async def get_profile(request: web.Request) -> web.Response:
    return json_response(await request.app[profile_services].get_profile(
        partner_id(request), _id(request, "profile_id", "billing profile")))


async def update_profile(request: web.Request) -> web.Response:
    profile = _id(request, "profile_id", "billing profile")
    body = await read_body(request, ProfileBody)
    return json_response(await request.app[profile_services].update_profile(partner_id(request), profile, body))


async def delete_profile(request: web.Request) -> web.Response:
    await request.app[profile_services].delete_profile(partner_id(request), _id(request, "profile_id",
                                                                              "billing profile"))
    return web.Response(status=204)


async def get_assignment(request: web.Request) -> web.Response:
    return json_response(await request.app[profile_services].assignment(
        partner_id(request), _id(request, "tenant_id", "tenant")))


async def put_assignment(request: web.Request) -> web.Response:
    tenant = _id(request, "tenant_id", "tenant")
    body = await read_body(request, AssignmentBody)
    return json_response(await request.app[profile_services].assign(partner_id(request), tenant, body))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/billing-profiles", list_profiles)
    app.router.add_post("/v1/billing-profiles", create_profile)
    app.router.add_get("/v1/billing-profiles/{profile_id}", get_profile)
    app.router.add_put("/v1/billing-profiles/{profile_id}", update_profile)
    app.router.add_delete("/v1/billing-profiles/{profile_id}", delete_profile)
    app.router.add_get("/v1/tenants/{tenant_id}/billing-profile", get_assignment)
    app.router.add_put("/v1/tenants/{tenant_id}/billing-profile", put_assignment)
