"""HTTP routes of the numbers capability (documented in openapi.yaml)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from controlplane.http.body import json_response, read_body
from controlplane.http.caller import partner_id, tenant_scope
from controlplane.http.pagination import CREATED_SORTS, page_request
from controlplane.http.problems import Problem
from controlplane.numbers.e911_services import E911Services
from controlplane.numbers.models import (AssignRequest, BulkRequest, CnamRequest, E911Request,
                                         PortAction, PortCreate, PurchaseRequest, RouteRequest)
from controlplane.shared.pagination import ListPage
from controlplane.numbers.porting import PortAction as PortStep
from controlplane.numbers.ports import PortServices
from controlplane.numbers.services import NumberServices

number_services = web.AppKey("number_services", NumberServices)
e911_services = web.AppKey("e911_services", E911Services)
port_services = web.AppKey("port_services", PortServices)
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
Handler = Callable[[web.Request], Awaitable[web.Response]]


def _id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.fullmatch(value):
        raise Problem(404, f"no such {name.removesuffix('_id')}", code="not_found")
    return value


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise Problem(422, f"{name}: a whole number", field=name)
    return int(raw)


async def load_inventory(request: web.Request) -> web.Response:
    text = (await request.read()).decode("utf-8", errors="replace")
    return json_response({"added": await request.app[number_services].load_inventory(text)}, 201)


async def search_local(request: web.Request) -> web.Response:
    q = request.query
    items = await request.app[number_services].search_local(
        partner_id(request), q.get("state"), q.get("area_code"), q.get("nxx"), q.get("rate_center"),
        q.get("city"), _int(request, "limit", 20))
    return json_response(ListPage.of(items))


async def search_toll_free(request: web.Request) -> web.Response:
    items = await request.app[number_services].search_toll_free(
        partner_id(request), request.query.get("pattern"), _int(request, "quantity", 10))
    return json_response(ListPage.of(items))


async def purchase(request: web.Request) -> web.Response:
    body = await read_body(request, PurchaseRequest)
    return json_response(await request.app[number_services].purchase(partner_id(request), body.numbers), 201)


async def list_numbers(request: web.Request) -> web.Response:
    q = request.query
    items, cursor = await request.app[number_services].list_numbers(
        partner_id(request), page_request(q, CREATED_SORTS), tenant_id=q.get("tenant_id"), status=q.get("status"),
        e911_status=q.get("e911_status"), q=q.get("q"), tenant_ids=tenant_scope(request))
    return json_response(ListPage.of(items, cursor))


async def get_number(request: web.Request) -> web.Response:
    return json_response(await request.app[number_services].get(partner_id(request), _id(request, "did_id")))


async def assign(request: web.Request) -> web.Response:
    body = await read_body(request, AssignRequest)
    return json_response(await request.app[number_services].assign(
        partner_id(request), _id(request, "did_id"), body.tenant_id, body.extension_id))


async def release(request: web.Request) -> web.Response:
    return json_response(await request.app[number_services].release(partner_id(request), _id(request, "did_id")))


async def route(request: web.Request) -> web.Response:
    body = await read_body(request, RouteRequest)
    return json_response(await request.app[number_services].route(partner_id(request), _id(request, "did_id"),
                                                                   body.extension_id))


async def set_cnam(request: web.Request) -> web.Response:
    body = await read_body(request, CnamRequest)
    return json_response(await request.app[number_services].set_cnam(partner_id(request), _id(request, "did_id"),
                                                                      body.cnam))


async def set_e911(request: web.Request) -> web.Response:
    body = await read_body(request, E911Request)
    items = await request.app[e911_services].register(partner_id(request), _id(request, "did_id"), body.address,
                                                      body.apply_to_tenant)
    return json_response({"items": items})


async def bulk(request: web.Request) -> web.Response:
    body = await read_body(request, BulkRequest)
    return json_response(await request.app[e911_services].bulk(partner_id(request), body))


async def compliance(request: web.Request) -> web.Response:
    return json_response(await request.app[e911_services].compliance(
        partner_id(request), request.query.get("e911_status"), request.query.get("tenant_id")))


async def create_port(request: web.Request) -> web.Response:
    body = await read_body(request, PortCreate)
    return json_response(await request.app[port_services].create(partner_id(request), body), 201)


async def list_ports(request: web.Request) -> web.Response:
    items = await request.app[port_services].list(partner_id(request), request.query.get("status"))
    return json_response(ListPage.of(items))


async def get_port(request: web.Request) -> web.Response:
    return json_response(await request.app[port_services].get(partner_id(request), _id(request, "port_id")))


async def upload_document(request: web.Request) -> web.Response:
    port = await request.app[port_services].add_document(
        partner_id(request), _id(request, "port_id"), request.query.get("kind", ""),
        request.query.get("filename", ""), request.content_type, await request.read())
    return json_response(port, 201)


def port_action(action: PortStep) -> Handler:
    """One route per transition, so each declares who may make it (openapi.yaml x-scope):
    submit, foc, complete and reject are the carrier's side (the platform token)."""
    async def handler(request: web.Request) -> web.Response:
        raw = await request.read()
        body = PortAction() if not raw.strip() else await read_body(request, PortAction)
        return json_response(await request.app[port_services].act(
            partner_id(request), _id(request, "port_id"), action.value, body))
    return handler


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/number-inventory", load_inventory)
    r.add_get("/v1/numbers/available/local", search_local)
    r.add_get("/v1/numbers/available/toll-free", search_toll_free)
    r.add_post("/v1/numbers/purchase", purchase)
    r.add_post("/v1/numbers/bulk", bulk)
    r.add_get("/v1/numbers", list_numbers)
    r.add_get("/v1/numbers/{did_id}", get_number)
    r.add_post("/v1/numbers/{did_id}/assign", assign)
    r.add_post("/v1/numbers/{did_id}/release", release)
    r.add_put("/v1/numbers/{did_id}/route", route)
    r.add_put("/v1/numbers/{did_id}/cnam", set_cnam)
    r.add_put("/v1/numbers/{did_id}/e911", set_e911)
    r.add_get("/v1/e911/compliance", compliance)
    r.add_post("/v1/ports", create_port)
    r.add_get("/v1/ports", list_ports)
    r.add_get("/v1/ports/{port_id}", get_port)
    r.add_post("/v1/ports/{port_id}/documents", upload_document)
    for step in PortStep:
        r.add_post(f"/v1/ports/{{port_id}}/{step.value}", port_action(step))
