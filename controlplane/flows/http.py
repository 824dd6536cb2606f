"""Routes of the flows capability (documented in openapi.yaml): IVR menus, time conditions,
DID routes and the tenant's unassigned-DID behaviour."""

from __future__ import annotations

from aiohttp import web

from controlplane.flows.models import IvrBody, RouteBody, SettingsBody, TimeConditionBody
from controlplane.flows.services import FlowServices
from controlplane.http.body import json_response, read_body
from controlplane.http.caller import partner_id
from controlplane.http.paths import ID, UUID, path_id, tenant_id
from controlplane.shared.pagination import ListPage

services_key = web.AppKey("flow_services", FlowServices)
TENANT = "/v1/tenants/{tenant_id}"


async def create_ivr(request: web.Request) -> web.Response:
    body = await read_body(request, IvrBody)
    return json_response(await request.app[services_key].save_ivr(partner_id(request), tenant_id(request),
                                                                  body), 201)


async def list_ivrs(request: web.Request) -> web.Response:
    items = await request.app[services_key].list_ivrs(partner_id(request), tenant_id(request))
    return json_response(ListPage.of(items, None))


async def get_ivr(request: web.Request) -> web.Response:
    ivr_id = path_id(request, "ivr_id", UUID, "IVR")
    return json_response(await request.app[services_key].get_ivr(partner_id(request), tenant_id(request),
                                                                 ivr_id))


async def update_ivr(request: web.Request) -> web.Response:
    ivr_id = path_id(request, "ivr_id", UUID, "IVR")
    body = await read_body(request, IvrBody)
    return json_response(await request.app[services_key].save_ivr(partner_id(request), tenant_id(request),
                                                                  body, ivr_id))


async def delete_ivr(request: web.Request) -> web.Response:
    ivr_id = path_id(request, "ivr_id", UUID, "IVR")
    await request.app[services_key].delete_ivr(partner_id(request), tenant_id(request), ivr_id)
    return web.Response(status=204)


async def create_tc(request: web.Request) -> web.Response:
    body = await read_body(request, TimeConditionBody)
    return json_response(await request.app[services_key].save_time_condition(
        partner_id(request), tenant_id(request), body), 201)


async def list_tcs(request: web.Request) -> web.Response:
    items = await request.app[services_key].list_time_conditions(partner_id(request), tenant_id(request))
    return json_response(ListPage.of(items, None))


async def get_tc(request: web.Request) -> web.Response:
    tc_id = path_id(request, "time_condition_id", UUID, "time condition")
    return json_response(await request.app[services_key].get_time_condition(
        partner_id(request), tenant_id(request), tc_id))


async def update_tc(request: web.Request) -> web.Response:
    tc_id = path_id(request, "time_condition_id", UUID, "time condition")
    body = await read_body(request, TimeConditionBody)
    return json_response(await request.app[services_key].save_time_condition(
        partner_id(request), tenant_id(request), body, tc_id))


async def delete_tc(request: web.Request) -> web.Response:
    tc_id = path_id(request, "time_condition_id", UUID, "time condition")
    await request.app[services_key].delete_time_condition(partner_id(request), tenant_id(request), tc_id)
    return web.Response(status=204)


async def route_did(request: web.Request) -> web.Response:
    did_id = path_id(request, "did_id", ID, "DID")
    body = await read_body(request, RouteBody)
    return json_response(await request.app[services_key].route_did(partner_id(request), tenant_id(request),
                                                                   did_id, body))


async def get_settings(request: web.Request) -> web.Response:
    return json_response(await request.app[services_key].settings(partner_id(request), tenant_id(request)))


async def put_settings(request: web.Request) -> web.Response:
    body = await read_body(request, SettingsBody)
    return json_response(await request.app[services_key].set_unassigned(
        partner_id(request), tenant_id(request), RouteBody(destination=body.unassigned_destination)))


async def upload_prompt(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    data = await request.read()
    return json_response(await request.app[services_key].upload_prompt(
        partner_id(request), tenant_id(request), name, data), 201)


def add_routes(app: web.Application) -> None:
    ivrs, ivr = TENANT + "/ivrs", TENANT + "/ivrs/{ivr_id}"
    tcs, tc = TENANT + "/time-conditions", TENANT + "/time-conditions/{time_condition_id}"
    app.router.add_post(ivrs, create_ivr)
    app.router.add_get(ivrs, list_ivrs)
    app.router.add_get(ivr, get_ivr)
    app.router.add_put(ivr, update_ivr)
    app.router.add_delete(ivr, delete_ivr)
    app.router.add_post(tcs, create_tc)
    app.router.add_get(tcs, list_tcs)
    app.router.add_get(tc, get_tc)
    app.router.add_put(tc, update_tc)
    app.router.add_delete(tc, delete_tc)
    app.router.add_put(TENANT + "/dids/{did_id}/route", route_did)
    app.router.add_put(TENANT + "/prompts/{name}", upload_prompt)
    app.router.add_get(TENANT + "/call-flow-settings", get_settings)
    app.router.add_put(TENANT + "/call-flow-settings", put_settings)
