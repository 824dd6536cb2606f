"""HTTP routes of the dunning capability (documented in openapi.yaml): the partner's settings."""

from __future__ import annotations

from aiohttp import web

from controlplane.dunning.models import DunningSettingsBody
from controlplane.dunning.services import DunningServices
from controlplane.http.body import json_response, read_body
from controlplane.http.caller import partner_id

dunning_services = web.AppKey("dunning_services", DunningServices)
PATH = "/v1/account/dunning"


async def get_settings(request: web.Request) -> web.Response:
    return json_response(await request.app[dunning_services].settings(partner_id(request)))


async def put_settings(request: web.Request) -> web.Response:
    body = await read_body(request, DunningSettingsBody)
    return json_response(await request.app[dunning_services].put_settings(partner_id(request), body))


async def delete_settings(request: web.Request) -> web.Response:
    return json_response(await request.app[dunning_services].delete_settings(partner_id(request)))


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, get_settings)
    app.router.add_put(PATH, put_settings)
    app.router.add_delete(PATH, delete_settings)
