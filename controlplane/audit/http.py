"""``GET /v1/audit-events``: the partner's audit log, filtered, newest or oldest first."""

from __future__ import annotations

import asyncpg
import msgspec
from aiohttp import web

from controlplane.audit import store
from controlplane.audit.models import AuditPage, event_from
from controlplane.http.body import parse_instant
from controlplane.http.caller import partner_id
from controlplane.http.pagination import CREATED_SORTS, next_page, page_request
from controlplane.http.problems import Problem

pool_key = web.AppKey("audit_pool", asyncpg.Pool)
_TEXT_FILTERS = ("resource", "resource_id", "tenant_id", "api_key_id", "user_id", "action")


async def list_audit_events(request: web.Request) -> web.Response:
    q = request.query
    for name in _TEXT_FILTERS:
        if name in q and not 0 < len(q[name]) <= 100:
            raise Problem(422, f"{name}: 1 to 100 characters", field=name)
    filters = store.Filters(partner_id(request), **{n: q.get(n) for n in _TEXT_FILTERS},
                            created_from=parse_instant(request.query.get("created_from"), "created_from"),
                            created_before=parse_instant(request.query.get("created_before"), "created_before"))
    page = page_request(q, CREATED_SORTS)
    rows = await store.list_page(request.app[pool_key], filters, page)
    items, cursor = next_page([event_from(r) for r in rows], page)
    return web.Response(body=msgspec.json.encode(AuditPage(items=items, next_cursor=cursor)),
                        content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/audit-events", list_audit_events)
