"""The OpenAPI document: a hand-kept contract, served as JSON.

The base document lives beside this module; each plugin adds a fragment
(``openapi.yaml`` in its package) whose ``paths`` and ``components`` are merged in.
Then what the middleware stack does to every operation is written into it once:
its scope (``x-scope``, see access.py), the API-key security, the 400/401/403/422/429
answers, and ``Idempotency-Key`` on POSTs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

import yaml
from aiohttp import web

openapi_document = web.AppKey("openapi_document", dict)


def _load(package: str) -> dict[str, Any]:
    return yaml.safe_load(resources.files(package).joinpath("openapi.yaml").read_text()) or {}


def build_document(plugin_packages: Iterable[str] = ()) -> dict[str, Any]:
    document = copy.deepcopy(_load("controlplane.http"))
    for package in plugin_packages:
        fragment = _load(package)
        for path, item in fragment.get("paths", {}).items():
            if path in document["paths"]:
                raise ValueError(f"{package}: path {path} is already documented")
            document["paths"][path] = item
        for section, entries in fragment.get("components", {}).items():
            target = document.setdefault("components", {}).setdefault(section, {})
            clash = set(target) & set(entries)
            if clash:
                raise ValueError(f"{package}: components.{section} {sorted(clash)} already defined")
            target.update(entries)
    # YAML anchors share objects: unshare before editing
    unshared: dict[str, Any] = json.loads(json.dumps(document))
    _decorate(unshared)
    return unshared


_COMMON = {"401": "Unauthorized", "403": "Forbidden", "429": "TooManyRequests"}
_METHODS = ("get", "put", "post", "patch", "delete")


def _decorate(document: dict[str, Any]) -> None:
    from controlplane.http.access import OPERATION_SCOPES, PLATFORM, PORTAL, TENANT_AWARE

    for item in document["paths"].values():
        for method in _METHODS:
            op = item.get(method)
            if op is None or op.get("security", document["security"]) == []:
                continue
            scope = op.setdefault("x-scope", OPERATION_SCOPES.get(op.get("operationId", "")))
            if scope is None:
                continue  # left for the contract test to report
            if op.get("operationId") in TENANT_AWARE:
                op.setdefault("x-tenant-aware", True)
            op.setdefault("security", [{"serviceToken": []}] if scope == PORTAL
                          else [{"platformToken": []}] if scope == PLATFORM
                          else [{"serviceToken": []}, {"apiKey": [scope]}])
            responses = op.setdefault("responses", {})
            for status, name in _COMMON.items():
                responses.setdefault(status, {"$ref": f"#/components/responses/{name}"})
            # Any operation: a control character in a query, path or JSON string (inputs.py).
            responses.setdefault("422", {"$ref": "#/components/responses/Invalid"})
            # Any operation: aiohttp's HTTP parser refuses an oversized request line or header.
            responses.setdefault("400", {"$ref": "#/components/responses/MalformedMessage"})
            if "text/csv" in responses.get("200", {}).get("content", {}):  # exports.py: their own budget
                responses.setdefault("503", {"$ref": "#/components/responses/ExportsBusy"})
            if method == "post":
                params = op.setdefault("parameters", [])
                params.append({"$ref": "#/components/parameters/IdempotencyKey"})
                responses.setdefault("409", {"$ref": "#/components/responses/Conflict"})


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[openapi_document])
