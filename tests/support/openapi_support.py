"""Walking the merged OpenAPI document: the contract tests' one reader of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from controlplane.http.openapi import build_document
from controlplane.plugin_list import PLUGINS

METHODS = ("get", "put", "post", "patch", "delete")


def merged_document() -> dict[str, Any]:
    """The document the daemon serves, from every plugin's fragment."""
    return build_document(p.package for p in PLUGINS)


def resolve(document: dict[str, Any], node: Any) -> Any:
    """``node`` with its ``$ref`` chain followed (anything else as it is)."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def media(document: dict[str, Any]) -> Iterator[tuple[str, bool, dict[str, Any]]]:
    """(where, is a response, media type object) of every request body and success response."""
    for path, item in document["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            for kind, body in resolve(document, op.get("requestBody", {})).get("content", {}).items():
                yield f"{method} {path} request {kind}", False, body
            for status, response in op["responses"].items():
                if str(status).startswith("2"):
                    for kind, body in resolve(document, response).get("content", {}).items():
                        yield f"{method} {path} {status} {kind}", True, body


def examples(document: dict[str, Any], body: dict[str, Any]) -> list[Any]:
    """The examples a media type object carries (``example``, ``examples`` or its schema's)."""
    if "example" in body:
        return [body["example"]]
    if "examples" in body:
        return [resolve(document, e)["value"] for e in body["examples"].values()]
    return list(resolve(document, body.get("schema", {})).get("examples", []))
