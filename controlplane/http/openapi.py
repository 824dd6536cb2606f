"""The OpenAPI document: a hand-kept contract, served as JSON.

The base document lives beside this module; each plugin adds a fragment
(``openapi.yaml`` in its package) whose ``paths`` and ``components`` are merged in.
"""

from __future__ import annotations

import copy
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
    return document


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[openapi_document])
