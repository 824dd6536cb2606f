"""HTTP routes of the tenants capability (documented in openapi.yaml)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from controlplane.http.caller import partner_id, require_tenant, tenant_scope
from controlplane.http.body import json_response, read_body
from controlplane.http.pagination import page_request
from controlplane.http.problems import Problem
from controlplane.tenants import export
from controlplane.tenants.models import (
    DidCreate, DidUpdate, ExtensionCreate, ExtensionUpdate, PartnerCreate, PartnerUpdate, TenantCreate,
    TenantDefaults, TenantUpdate)
from controlplane.shared.pagination import ListPage
from controlplane.tenants.numbering import NumberingServices
from controlplane.tenants.services import TenantServices

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
tenant_services = web.AppKey("tenant_services", TenantServices)
numbering_services = web.AppKey("numbering_services", NumberingServices)



def _page(items: list[Any], cursor: str | None) -> web.Response:
    return json_response(ListPage.of(items, cursor))



def _id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.fullmatch(value):
        raise Problem(404, f"no such {name.removesuffix('_id')}", code="not_found")
    return value


def _flag(request: web.Request, name: str) -> bool | None:
    value = request.query.get(name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise Problem(422, f"{name} must be true or false", field=name)
    return value == "true"


# ---------------------------------------------------------------- partners

async def create_partner(request: web.Request) -> web.Response:
    body = await read_body(request, PartnerCreate)
    return json_response(await request.app[tenant_services].create_partner(body), 201)


async def list_partners(request: web.Request) -> web.Response:
    items, cursor = await request.app[tenant_services].list_partners(page_request(request.query),
                                                                     request.query.get("tier"))
    return _page(items, cursor)


async def get_partner(request: web.Request) -> web.Response:
    return json_response(await request.app[tenant_services].get_partner(_id(request, "partner_id")))


async def update_partner(request: web.Request) -> web.Response:
    body = await read_body(request, PartnerUpdate)
    return json_response(await request.app[tenant_services].update_partner(_id(request, "partner_id"), body))


async def delete_partner(request: web.Request) -> web.Response:
    await request.app[tenant_services].delete_partner(_id(request, "partner_id"))
    return web.Response(status=204)


# ---------------------------------------------------------------- tenants

async def create_tenant(request: web.Request) -> web.Response:
    body = await read_body(request, TenantCreate)
    return json_response(await request.app[tenant_services].create_tenant(partner_id(request), body), 201)


async def list_tenants(request: web.Request) -> web.Response:
    q = request.query
    items, cursor = await request.app[tenant_services].list_tenants(
        partner_id(request), page_request(q), q.get("status"), q.get("q"), tenant_scope(request))
    return _page(items, cursor)


async def export_tenants(request: web.Request) -> web.StreamResponse:
    q, partner, scope = request.query, partner_id(request), tenant_scope(request)
    services = request.app[tenant_services]
    return await export.stream(request, "tenants", export.TENANT_COLUMNS, lambda page: services.list_tenants(
        partner, page, q.get("status"), q.get("q"), scope))


async def get_tenant(request: web.Request) -> web.Response:
    return json_response(await request.app[tenant_services].get_tenant(partner_id(request), _id(request, "tenant_id")))


async def update_tenant(request: web.Request) -> web.Response:
    body = await read_body(request, TenantUpdate)
    return json_response(await request.app[tenant_services].update_tenant(
        partner_id(request), _id(request, "tenant_id"), body))


async def delete_tenant(request: web.Request) -> web.Response:
    return json_response(await request.app[tenant_services].delete_tenant(
        partner_id(request), _id(request, "tenant_id"), request.query.get("confirm")))


async def get_defaults(request: web.Request) -> web.Response:
    return json_response(await request.app[tenant_services].get_defaults(partner_id(request)))


async def put_defaults(request: web.Request) -> web.Response:
    body = await read_body(request, TenantDefaults)
    return json_response(await request.app[tenant_services].put_defaults(partner_id(request), body))


# ---------------------------------------------------------------- extensions

async def create_extension(request: web.Request) -> web.Response:
    body = await read_body(request, ExtensionCreate)
    return json_response(await request.app[numbering_services].create_extension(
        partner_id(request), _id(request, "tenant_id"), body), 201)


async def list_extensions(request: web.Request) -> web.Response:
    items, cursor = await request.app[numbering_services].list_extensions(
        partner_id(request), _id(request, "tenant_id"), page_request(request.query), request.query.get("q"))
    return _page(items, cursor)


async def get_extension(request: web.Request) -> web.Response:
    return json_response(await request.app[numbering_services].get_extension(
        partner_id(request), _id(request, "tenant_id"), _id(request, "extension_id")))


async def update_extension(request: web.Request) -> web.Response:
    body = await read_body(request, ExtensionUpdate)
    return json_response(await request.app[numbering_services].update_extension(
        partner_id(request), _id(request, "tenant_id"), _id(request, "extension_id"), body))


async def reset_extension_password(request: web.Request) -> web.Response:
    return json_response(await request.app[numbering_services].reset_password(
        partner_id(request), _id(request, "tenant_id"), _id(request, "extension_id")))


async def delete_extension(request: web.Request) -> web.Response:
    await request.app[numbering_services].delete_extension(
        partner_id(request), _id(request, "tenant_id"), _id(request, "extension_id"))
    return web.Response(status=204)


# ---------------------------------------------------------------- DIDs

async def create_did(request: web.Request) -> web.Response:
    body = await read_body(request, DidCreate)
    return json_response(await request.app[numbering_services].create_did(partner_id(request), body), 201)


async def list_dids(request: web.Request) -> web.Response:
    q = request.query
    items, cursor = await request.app[numbering_services].list_dids(
        partner_id(request), page_request(q), q.get("tenant_id"), q.get("status"), _flag(request, "assigned"),
        q.get("q"), tenant_scope(request))
    return _deprecated(_page(items, cursor), "/v1/numbers")


async def export_dids(request: web.Request) -> web.StreamResponse:
    q, partner, scope = request.query, partner_id(request), tenant_scope(request)
    services, assigned = request.app[numbering_services], _flag(request, "assigned")
    return await export.stream(request, "dids", export.DID_COLUMNS, lambda page: services.list_dids(
        partner, page, q.get("tenant_id"), q.get("status"), assigned, q.get("q"), scope))


async def _scoped_did(request: web.Request) -> Any:
    """The DID, or a 404 when a tenant-scoped key asks for one outside its tenants."""
    did = await request.app[numbering_services].get_did(partner_id(request), _id(request, "did_id"))
    scope = tenant_scope(request)
    if scope is not None and did.tenant_id not in scope:
        raise Problem(404, f"no DID {did.id} for this partner", code="not_found")
    return did


# RFC 9745: deprecated since 2026-12-01 00:00 UTC (issue 13, docs/numbers.md).
DIDS_DEPRECATED = "@1796083200"


def _deprecated(response: web.Response, successor: str) -> web.Response:
    """A deprecated alias of a /v1/numbers route (RFC 9745 Deprecation, RFC 8288 Link)."""
    response.headers["Deprecation"] = DIDS_DEPRECATED
    response.headers["Link"] = f'<{successor}>; rel="successor-version"'
    return response


async def get_did(request: web.Request) -> web.Response:
    did = await _scoped_did(request)
    return _deprecated(json_response(did), f"/v1/numbers/{did.id}")


async def update_did(request: web.Request) -> web.Response:
    body = await read_body(request, DidUpdate)
    if tenant_scope(request) is not None:
        await _scoped_did(request)
        if isinstance(body.tenant_id, str):
            require_tenant(request, body.tenant_id)
    did = await request.app[numbering_services].update_did(partner_id(request), _id(request, "did_id"), body)
    return _deprecated(json_response(did), f"/v1/numbers/{did.id}")


async def delete_did(request: web.Request) -> web.Response:
    await request.app[numbering_services].delete_did(partner_id(request), _id(request, "did_id"))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/partners", create_partner)
    r.add_get("/v1/partners", list_partners)
    r.add_get("/v1/partners/{partner_id}", get_partner)
    r.add_patch("/v1/partners/{partner_id}", update_partner)
    r.add_delete("/v1/partners/{partner_id}", delete_partner)
    r.add_post("/v1/tenants", create_tenant)
    r.add_get("/v1/tenants", list_tenants)
    r.add_get("/v1/tenants/export", export_tenants)
    r.add_get("/v1/tenant-defaults", get_defaults)
    r.add_put("/v1/tenant-defaults", put_defaults)
    r.add_get("/v1/tenants/{tenant_id}", get_tenant)
    r.add_patch("/v1/tenants/{tenant_id}", update_tenant)
    r.add_delete("/v1/tenants/{tenant_id}", delete_tenant)
    base = "/v1/tenants/{tenant_id}/extensions"
    r.add_post(base, create_extension)
    r.add_get(base, list_extensions)
    r.add_get(base + "/{extension_id}", get_extension)
    r.add_patch(base + "/{extension_id}", update_extension)
    r.add_delete(base + "/{extension_id}", delete_extension)
    r.add_post(base + "/{extension_id}/reset-password", reset_extension_password)
    r.add_post("/v1/dids", create_did)
    r.add_get("/v1/dids", list_dids)
    r.add_get("/v1/dids/export", export_dids)
    r.add_get("/v1/dids/{did_id}", get_did)
    r.add_patch("/v1/dids/{did_id}", update_did)
    r.add_delete("/v1/dids/{did_id}", delete_did)
