"""``/v1/webhook-endpoints``: endpoints, secrets and the deliveries debugger over HTTP."""

from __future__ import annotations

from aiohttp import web

from controlplane.http.caller import partner_id
from controlplane.http.body import json_response, read_body
from controlplane.shared.pagination import ListPage
from controlplane.webhooks.models import EndpointCreate, EndpointUpdate
from controlplane.webhooks.services import EndpointService

service_key = web.AppKey("webhooks_service", EndpointService)

BASE = "/v1/webhook-endpoints"


def _ids(request: web.Request) -> tuple[EndpointService, str, str]:
    return request.app[service_key], partner_id(request), request.match_info["endpoint_id"]


async def create(request: web.Request) -> web.Response:
    service, partner = request.app[service_key], partner_id(request)
    return json_response(await service.create(partner, await read_body(request, EndpointCreate)), 201)


async def list_endpoints(request: web.Request) -> web.Response:
    service, partner = request.app[service_key], partner_id(request)
    return json_response(ListPage.of(await service.list(partner)))


async def get(request: web.Request) -> web.Response:
    service, partner, endpoint = _ids(request)
    return json_response(await service.get(partner, endpoint))


async def update(request: web.Request) -> web.Response:
    service, partner, endpoint = _ids(request)
    return json_response(await service.update(partner, endpoint, await read_body(request, EndpointUpdate)))


async def delete(request: web.Request) -> web.Response:
    service, partner, endpoint = _ids(request)
    await service.delete(partner, endpoint)
    return web.Response(status=204)


async def enable(request: web.Request) -> web.Response:
    service, partner, endpoint = _ids(request)
    return json_response(await service.set_enabled(partner, endpoint, True))


async def disable(request: web.Request) -> web.Response:
    service, partner, endpoint = _ids(request)
    return json_response(await service.set_enabled(partner, endpoint, False))


async def rotate_secret(request: web.Request) -> web.Response:
    service, partner, endpoint = _ids(request)
    return json_response(await service.rotate_secret(partner, endpoint))


async def deliveries(request: web.Request) -> web.Response:
    service, partner, endpoint = _ids(request)
    return json_response(ListPage.of(await service.deliveries(partner, endpoint)))


async def delivery(request: web.Request) -> web.Response:
    service, partner, endpoint = _ids(request)
    return json_response(await service.delivery(partner, endpoint, request.match_info["delivery_id"]))


async def redeliver(request: web.Request) -> web.Response:
    service, partner, endpoint = _ids(request)
    return json_response(await service.redeliver(partner, endpoint, request.match_info["delivery_id"]), 202)


def add_routes(app: web.Application) -> None:
    one = BASE + "/{endpoint_id}"
    app.router.add_post(BASE, create)
    app.router.add_get(BASE, list_endpoints)
    app.router.add_get(one, get)
    app.router.add_patch(one, update)
    app.router.add_delete(one, delete)
    app.router.add_post(one + "/enable", enable)
    app.router.add_post(one + "/disable", disable)
    app.router.add_post(one + "/rotate-secret", rotate_secret)
    app.router.add_get(one + "/deliveries", deliveries)
    app.router.add_get(one + "/deliveries/{delivery_id}", delivery)
    app.router.add_post(one + "/deliveries/{delivery_id}/redeliver", redeliver)
