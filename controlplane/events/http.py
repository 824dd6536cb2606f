"""``/v1/events`` (the feed, for consumers who poll) and ``/v1/event-types``."""

from __future__ import annotations

from dataclasses import replace

import asyncpg
import msgspec
from aiohttp import web

from controlplane.events import cursor, registry, store
from controlplane.http.body import parse_instant
from controlplane.http.caller import partner_id
from controlplane.http.pagination import page_limit
from controlplane.http.problems import Problem
from controlplane.shared.pagination import ListPage

pool_key = web.AppKey("events_pool", asyncpg.Pool)

DEFAULT_LIMIT = 100


class _Category(msgspec.Struct):
    name: str
    types: list[str]


def _json(payload: msgspec.Struct) -> web.Response:
    return web.Response(body=msgspec.json.encode(payload), content_type="application/json")


def _query(request: web.Request) -> store.FeedQuery:
    types = tuple(t for raw in request.query.getall("type", []) for t in raw.split(",") if t)
    for event_type in types:
        if event_type not in registry.EVENT_TYPES:
            raise Problem(422, f"unknown event type {event_type!r}", field="type")
    after = 0
    if "cursor" in request.query:
        try:
            after = cursor.decode(request.query["cursor"])
        except cursor.BadCursor as exc:
            raise Problem(422, str(exc), field="cursor") from None
    return store.FeedQuery(partner_id=partner_id(request), after_position=after,
                           limit=page_limit(request.query, DEFAULT_LIMIT), types=types,
                           tenant_id=request.query.get("tenant_id"), created_from=parse_instant(request.query.get("created_from"), "created_from"),
                           created_before=parse_instant(request.query.get("created_before"), "created_before"))


async def list_events(request: web.Request) -> web.Response:
    query = _query(request)
    rows = await store.feed(request.app[pool_key], replace(query, limit=query.limit + 1))
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    last = rows[-1][0] if rows else query.after_position
    return _json(ListPage(items=[msgspec.Raw(body) for _, body in rows], next_cursor=cursor.encode(last),
                          has_more=more))


async def get_event(request: web.Request) -> web.Response:
    body = await store.get_body(request.app[pool_key], partner_id(request), request.match_info["event_id"])
    if body is None:
        raise Problem(404, "no such event for this partner")
    return web.Response(body=body, content_type="application/json")


async def event_types(request: web.Request) -> web.Response:
    return _json(ListPage.of([_Category(name, list(types)) for name, types in registry.CATEGORIES.items()]))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/events", list_events)
    app.router.add_get("/v1/events/{event_id}", get_event)
    app.router.add_get("/v1/event-types", event_types)
