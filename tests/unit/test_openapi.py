"""The contract and the routes must describe the same API."""

from __future__ import annotations

import re

from aiohttp import web

from controlplane.http.app import make_app
from controlplane.http.openapi import openapi_document
from controlplane.plugins import Context

_METHODS = {"get", "put", "post", "patch", "delete"}


def _app() -> web.Application:
    from controlplane.daemon import PLUGINS

    context = Context(config=None, pool=None)  # type: ignore[arg-type]  # install() only wires
    return make_app(service_token_value="t", probes=[], plugins=PLUGINS, context=context)


def _routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        if route.method.lower() in _METHODS:
            path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", route.resource.canonical)
            found.add((route.method.lower(), path))
    return found


def _documented(app: web.Application) -> set[tuple[str, str]]:
    paths = app[openapi_document]["paths"]
    return {(method, path) for path, item in paths.items() for method in item if method in _METHODS}


def test_every_route_is_documented_and_every_entry_routed() -> None:
    app = _app()
    routes, documented = _routes(app), _documented(app)
    assert routes - documented == set(), "routes without a spec entry"
    assert documented - routes == set(), "spec entries without a route"


def test_every_operation_declares_its_errors_and_an_id() -> None:
    doc = _app()[openapi_document]
    ids = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            ids.append(operation["operationId"])
            secured = operation.get("security", doc["security"]) != []
            if secured:
                assert "401" in operation["responses"], f"{method} {path} lacks 401"
    assert len(ids) == len(set(ids)), "duplicate operationId"
