"""The merged OpenAPI document is a valid 3.1 document, and every request body and success
response carries an example that its own schema accepts (docs/api.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from openapi_spec_validator import validate

from controlplane.http.openapi import build_document
from controlplane.plugin_list import PLUGINS

_METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document(p.package for p in PLUGINS)


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _media(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, media type object) of every request body and success response."""
    for path, item in document["paths"].items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            body = _resolve(document, op.get("requestBody", {}))
            for kind, media in body.get("content", {}).items():
                yield f"{method} {path} request {kind}", media
            for status, response in op["responses"].items():
                if str(status).startswith("2"):
                    for kind, media in _resolve(document, response).get("content", {}).items():
                        yield f"{method} {path} {status} {kind}", media


def _examples(document: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    if "example" in media:
        return [media["example"]]
    if "examples" in media:
        return [_resolve(document, e)["value"] for e in media["examples"].values()]
    return list(_resolve(document, media.get("schema", {})).get("examples", []))


def test_the_document_validates_with_openapi_spec_validator(document: dict[str, Any]) -> None:
    validate(document)  # raises OpenAPIValidationError naming the first fault


def test_every_request_body_and_success_response_has_an_example(document: dict[str, Any]) -> None:
    missing = [where for where, media in _media(document) if not _examples(document, media)]
    assert missing == [], "\n".join(missing)


def test_every_json_example_is_accepted_by_its_schema(document: dict[str, Any]) -> None:
    for where, media in _media(document):
        if "schema" not in media or not isinstance(media["schema"], dict):
            continue
        validator = Draft202012Validator({**media["schema"], "components": document["components"]})
        for example in _examples(document, media):
            if isinstance(example, str) and "json" not in where:
                continue  # a CSV or binary sample
            faults = [e.message for e in validator.iter_errors(example)]
            assert faults == [], f"{where}: {faults}"
