"""Assembles the aiohttp application: middlewares, routes, shared state."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable, Sequence

import asyncpg

from aiohttp import web

from controlplane.http import access, health, openapi
from controlplane.http.access_log import access_log
from controlplane.http.exports import ExportBudget, export_budget
from controlplane.http.idempotency import ReplayBox, idempotency, purge_forever, replay_box
from controlplane.http.inputs import reject_control_characters
from controlplane.http.middleware import db_pool, guard, install_access_table, platform_token, rate_limiter, \
    request_context, service_token
from controlplane.http.ratelimit import RateLimiter
from controlplane.plugins import Context, Plugin
from controlplane.secret_box import secret_key


def make_app(*, service_token_value: str, probes: Sequence[health.Probe],
             plugins: Sequence[Plugin] = (), context: Context | None = None,
             limiter: RateLimiter | None = None, platform_token_value: str | None = None) -> web.Application:
    """``platform_token_value``: the operator's token (platform operations); None accepts none."""
    if platform_token_value is not None and platform_token_value == service_token_value:
        raise ValueError("the platform token must differ from the service token")
    app = web.Application(middlewares=[request_context, access_log, guard, reject_control_characters,
                                       idempotency],
                          client_max_size=1024 * 1024)
    app[service_token] = service_token_value
    if platform_token_value is not None:
        app[platform_token] = platform_token_value
    app[rate_limiter] = limiter or RateLimiter()
    app[health.probes_key] = list(probes)
    document = openapi.build_document(p.package for p in plugins)
    app[openapi.openapi_document] = document
    install_access_table(app, access.operation_access(document))
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/openapi.json", openapi.openapi_json)
    if plugins:
        assert context is not None, "plugins need a context"
        for plugin in plugins:  # in the order given: nothing may depend on it (controlplane.signals)
            plugin.install(app, context)
    if context is not None:
        context.signals.freeze()
    if context is not None and context.pool is not None:
        app[db_pool] = context.pool
        config = context.config
        app[replay_box] = ReplayBox(lambda: secret_key(config))
        app[export_budget] = ExportBudget(config.http.export_slots, config.http.export_seconds)
        app.cleanup_ctx.append(_purging(context.pool))
    # Everything built so far (modules, the OpenAPI document, routes, plugin state) lives as
    # long as the process: out of the collector's generations, so a full collection under
    # load walks the requests' garbage only (a p99 cost, docs/performance.md).
    gc.freeze()
    return app


def _purging(pool: asyncpg.Pool) -> Callable[[web.Application], AsyncIterator[None]]:
    """Idempotency records are purged while the server runs (started and stopped with it)."""
    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(purge_forever(pool))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return context
