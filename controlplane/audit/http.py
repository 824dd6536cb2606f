"""``GET /v1/audit-events``: the partner's audit log, filtered, newest or oldest first; and the
generic entry of a mutation whose service wrote none (``MutationEntries``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import asyncpg
import msgspec
from aiohttp import web

from controlplane.audit import store
from controlplane.audit.models import event_from
from controlplane.shared.pagination import ListPage
from controlplane.http.body import parse_instant
from controlplane.http.caller import partner_id
from controlplane.http.pagination import CREATED_SORTS, page_request
from controlplane.http.problems import Problem
from controlplane.shared.actor import Actor
from controlplane.shared.pagination import next_page

pool_key = web.AppKey("audit_pool", asyncpg.Pool)
_TEXT_FILTERS = ("resource", "resource_id", "tenant_id", "api_key_id", "acting_user_id", "action")
_OUTCOMES = ("succeeded", "refused")


async def list_audit_events(request: web.Request) -> web.Response:
    q = request.query
    for name in _TEXT_FILTERS:
        if name in q and not 0 < len(q[name]) <= 100:
            raise Problem(422, f"{name}: 1 to 100 characters", field=name)
    if "outcome" in q and q["outcome"] not in _OUTCOMES:
        raise Problem(422, f"outcome: one of {', '.join(_OUTCOMES)}", field="outcome")
    filters = store.Filters(partner_id(request), **{n: q.get(n) for n in _TEXT_FILTERS}, outcome=q.get("outcome"),
                            created_from=parse_instant(request.query.get("created_from"), "created_from"),
                            created_before=parse_instant(request.query.get("created_before"), "created_before"))
    page = page_request(q, CREATED_SORTS)
    rows = await store.list_page(request.app[pool_key], filters, page)
    items, cursor = next_page([event_from(r) for r in rows], page)
    return web.Response(body=msgspec.json.encode(ListPage.of(items, cursor)),
                        content_type="application/json")


@dataclass(frozen=True)
class MutationEntries:
    """The HTTP guard's ``MutationAuditor``: who, which route, which id."""

    pool: asyncpg.Pool

    async def unaudited(self, request: web.Request, action: str, actor: Actor) -> None:
        await store.insert(self.pool, self._entry(request, action, actor))

    async def refused(self, request: web.Request, action: str, actor: Actor, code: str | None) -> None:
        await store.insert(self.pool, self._entry(request, action, actor, refused=True, code=code))

    @staticmethod
    def _entry(request: web.Request, action: str, actor: Actor, *, refused: bool = False,
               code: str | None = None) -> store.Entry:
        parts = request.path.split("/")
        ids = list(request.match_info.values())
        return store.Entry(
            id=f"aud_{secrets.token_hex(8)}", partner_id=actor.partner_id,
            tenant_id=request.match_info.get("tenant_id"), actor_type=actor.actor_type,
            api_key_id=actor.api_key_id, acting_user_id=actor.user_id, action=action,
            resource=parts[2] if len(parts) > 2 else request.path, resource_id=ids[-1] if ids else "",
            changes={}, request_id=actor.request_id,
            outcome="refused" if refused else "succeeded", refused_code=code)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/audit-events", list_audit_events)
