"""``/v1/api-keys``: partner API keys, managed by the portal (service token) only."""

from __future__ import annotations

import re

from aiohttp import web

from controlplane.apikeys.models import ApiKeyCreate, ApiKeyUpdate
from controlplane.shared.pagination import ListPage
from controlplane.apikeys.services import KeyServices
from controlplane.http.body import json_response, read_body
from controlplane.http.caller import partner_id
from controlplane.http.pagination import page_request
from controlplane.http.problems import Problem

services_key = web.AppKey("apikeys_services", KeyServices)
BASE = "/v1/api-keys"
_ID = re.compile(r"key_[0-9a-f]{16}")


def _key_id(request: web.Request) -> str:
    key_id = request.match_info["key_id"]
    if not _ID.fullmatch(key_id):
        raise Problem(404, f"no API key {key_id} for this partner", code="not_found")
    return key_id


async def create(request: web.Request) -> web.Response:
    body = await read_body(request, ApiKeyCreate)
    return json_response(await request.app[services_key].create(partner_id(request), body), 201)


async def list_keys(request: web.Request) -> web.Response:
    page = page_request(request.query)
    items, cursor = await request.app[services_key].list_keys(partner_id(request), page,
                                                              request.query.get("status"))
    return json_response(ListPage.of(items, cursor))


async def get(request: web.Request) -> web.Response:
    return json_response(await request.app[services_key].get(partner_id(request), _key_id(request)))


async def update(request: web.Request) -> web.Response:
    body = await read_body(request, ApiKeyUpdate)
    return json_response(await request.app[services_key].update(partner_id(request), _key_id(request), body))


async def revoke(request: web.Request) -> web.Response:
    return json_response(await request.app[services_key].revoke(partner_id(request), _key_id(request)))


async def delete(request: web.Request) -> web.Response:
    await request.app[services_key].delete(partner_id(request), _key_id(request))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    one = BASE + "/{key_id}"
    app.router.add_post(BASE, create)
    app.router.add_get(BASE, list_keys)
    app.router.add_get(one, get)
    app.router.add_patch(one, update)
    app.router.add_delete(one, delete)
    app.router.add_post(one + "/revoke", revoke)
