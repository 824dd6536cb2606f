"""The OpenAPI document: a hand-kept contract, served as JSON."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml
from aiohttp import web


@cache
def document() -> dict[str, Any]:
    text = resources.files("controlplane.http").joinpath("openapi.yaml").read_text()
    return yaml.safe_load(text)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document())
