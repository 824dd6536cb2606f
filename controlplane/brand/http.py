"""HTTP routes of the brand capability (documented in openapi.yaml).

PUT bodies are partial: a field left out keeps its value, ``null`` resets it to its
default (the portal's toggles auto-save one at a time).
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from controlplane.brand.services import BrandServices
from controlplane.http.body import json_response
from controlplane.http.caller import partner_id
from controlplane.http.problems import Problem

brand_services = web.AppKey("brand_services", BrandServices)
# A logo is shown, never run: even a checked SVG gets no script, no fetch, no framing.
_LOGO_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
                 "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300"}


async def _object(request: web.Request) -> dict[str, Any]:
    try:
        document = msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        raise Problem(422, "the body must be a JSON object", field="body") from None
    if not isinstance(document, dict):
        raise Problem(422, "the body must be a JSON object", field="body")
    return document


async def get_company(request: web.Request) -> web.Response:
    return json_response(await request.app[brand_services].company(partner_id(request)))


async def put_company(request: web.Request) -> web.Response:
    document = await _object(request)
    return json_response(await request.app[brand_services].update_company(partner_id(request), document))


async def get_brand(request: web.Request) -> web.Response:
    return json_response(await request.app[brand_services].brand(partner_id(request)))


async def put_brand(request: web.Request) -> web.Response:
    document = await _object(request)
    return json_response(await request.app[brand_services].update_brand(partner_id(request), document))


async def get_notifications(request: web.Request) -> web.Response:
    return json_response(await request.app[brand_services].notifications(partner_id(request)))


async def put_notifications(request: web.Request) -> web.Response:
    document = await _object(request)
    return json_response(await request.app[brand_services].update_notifications(partner_id(request), document))


async def get_logo(request: web.Request) -> web.Response:
    content_type, data, digest = await request.app[brand_services].logo(partner_id(request))
    return web.Response(body=data, content_type=content_type, headers={**_LOGO_HEADERS, "ETag": f'"{digest}"'})


async def put_logo(request: web.Request) -> web.Response:
    data = await request.read()
    brand = await request.app[brand_services].put_logo(partner_id(request), request.content_type, data)
    return json_response(brand)


async def delete_logo(request: web.Request) -> web.Response:
    await request.app[brand_services].delete_logo(partner_id(request))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/account/company", get_company)
    app.router.add_put("/v1/account/company", put_company)
    app.router.add_get("/v1/account/brand", get_brand)
    app.router.add_put("/v1/account/brand", put_brand)
    app.router.add_get("/v1/account/brand/logo", get_logo)
    app.router.add_put("/v1/account/brand/logo", put_logo)
    app.router.add_delete("/v1/account/brand/logo", delete_logo)
    app.router.add_get("/v1/account/notifications", get_notifications)
    app.router.add_put("/v1/account/notifications", put_notifications)
