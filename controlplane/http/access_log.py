"""The access log: one structlog event per request, and the request-time histogram.

Sits inside ``request_context`` (so the request id is bound) and outside the guard (so
refusals are logged too). An exception leaving the handler is logged with the status
``request_context`` will answer (its HTTP status, else 500) and passed on.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import Histogram

from controlplane.metrics.families import HTTP_REQUESTS
from controlplane.shared.problems import Problem

log = structlog.get_logger("controlplane.access")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PROBES = frozenset({"/healthz", "/readyz"})
_children: dict[tuple[str, str, int], Histogram] = {}
_CHILDREN_MAX = 1024


def _route(request: web.Request) -> str:
    """The route template (``/v1/tenants/{tenant_id}``): bounded, unlike the path."""
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except (web.HTTPException, Problem) as exc:  # what request_context answers them with
        status = exc.status
        raise
    finally:
        seconds = time.perf_counter() - started
        route = _route(request)
        labels = (request.method, route, status // 100)
        child = _children.get(labels)
        if child is None:  # ``labels()`` builds and locks per call: looked up once per combination
            if len(_children) >= _CHILDREN_MAX:  # a client inventing methods: start over
                _children.clear()
            child = _children[labels] = HTTP_REQUESTS.labels(request.method, route, f"{status // 100}xx")
        child.observe(seconds)
        # Probes poll every few seconds: at debug, so the log shows requests, not the orchestrator.
        emit = log.debug if route in _PROBES else log.info
        emit("http.request", method=request.method, path=request.path, route=route, status=status,
             duration_ms=round(seconds * 1000, 2), remote=request.remote,
             user_agent=request.headers.get("User-Agent"))
