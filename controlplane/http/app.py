"""Assembles the aiohttp application: middlewares, routes, shared state."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from controlplane.http import health, openapi
from controlplane.http.middleware import request_context, service_token, service_token_auth
from controlplane.plugins import Context, Plugin


def make_app(*, service_token_value: str, probes: Sequence[health.Probe],
             plugins: Sequence[Plugin] = (), context: Context | None = None) -> web.Application:
    app = web.Application(middlewares=[request_context, service_token_auth],
                          client_max_size=1024 * 1024)
    app[service_token] = service_token_value
    app[health.probes_key] = list(probes)
    app[openapi.openapi_document] = openapi.build_document(p.package for p in plugins)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/openapi.json", openapi.openapi_json)
    if plugins:
        assert context is not None, "plugins need a context"
        for plugin in plugins:
            plugin.install(app, context)
    return app
