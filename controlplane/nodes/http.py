"""Platform routes of the nodes capability (openapi.yaml): nodes, and which node a tenant lives on."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from controlplane.http.body import json_response
from controlplane.nodes.services import NodeServices
from controlplane.shared.pagination import ListPage
from controlplane.shared.problems import Problem

node_services = web.AppKey("node_services", NodeServices)


async def _object(request: web.Request) -> dict[str, Any]:
    try:
        document = msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        raise Problem(422, "the body must be a JSON object", field="body") from None
    if not isinstance(document, dict):
        raise Problem(422, "the body must be a JSON object", field="body")
    return document


async def list_nodes(request: web.Request) -> web.Response:
    # Every node at once (a deployment has a handful): the envelope without a cursor.
    return json_response(ListPage.of(await request.app[node_services].nodes()))


async def put_node(request: web.Request) -> web.Response:
    created, view = await request.app[node_services].put_node(request.match_info["node_id"], await _object(request))
    return json_response(view, status=201 if created else 200)


async def get_tenant_node(request: web.Request) -> web.Response:
    return json_response(await request.app[node_services].tenant_node(request.match_info["tenant_id"]))


async def put_tenant_node(request: web.Request) -> web.Response:
    services = request.app[node_services]
    return json_response(await services.move(request.match_info["tenant_id"], await _object(request)))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/platform/nodes", list_nodes)
    app.router.add_put("/v1/platform/nodes/{node_id}", put_node)
    app.router.add_get("/v1/platform/tenants/{tenant_id}/node", get_tenant_node)
    app.router.add_put("/v1/platform/tenants/{tenant_id}/node", put_tenant_node)
