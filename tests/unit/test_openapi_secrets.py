"""One-time secrets in the merged OpenAPI document (docs/api.md "Response shapes"): a
response shows a secret only inside its ``secrets`` object, and ``secrets`` holds nothing
else; the routes that mint one answer the resource itself plus ``secrets``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from openapi_support import METHODS, merged_document, resolve

_SECRET = re.compile(r"(^|_)(secret|password)$|^key$")
_MINTING = {  # route -> the resource it answers, and the secret in it
    ("post", "/v1/api-keys"): ("ApiKey", "key"),
    ("post", "/v1/tenants/{tenant_id}/extensions"): ("Extension", "sip_password"),
    ("post", "/v1/tenants/{tenant_id}/extensions/{extension_id}/reset-password"):
        ("Extension", "sip_password"),
    ("post", "/v1/webhook-endpoints"): ("WebhookEndpoint", "signing_secret"),
    ("post", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): ("WebhookEndpoint", "signing_secret"),
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return merged_document()


def _properties(document: dict[str, Any], schema: Any) -> dict[str, Any]:
    schema = resolve(document, schema)
    merged = dict(schema.get("properties", {})) if isinstance(schema, dict) else {}
    for part in schema.get("allOf", []) if isinstance(schema, dict) else []:
        merged.update(_properties(document, part))
    return merged


def _names(document: dict[str, Any], schema: Any, path: str, seen: frozenset[int] = frozenset()
           ) -> Iterator[str]:
    """Dotted path of every property under ``schema``."""
    schema = resolve(document, schema)
    if not isinstance(schema, dict) or id(schema) in seen:
        return
    seen = seen | {id(schema)}
    for name, child in _properties(document, schema).items():
        yield f"{path}.{name}"
        yield from _names(document, child, f"{path}.{name}", seen)
    for child in (schema.get("items"), *schema.get("anyOf", []), *schema.get("oneOf", [])):
        if child is not None:
            yield from _names(document, child, path, seen)


def _success(document: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            op = item.get(method)
            for status, response in (op or {}).get("responses", {}).items():
                if str(status).startswith("2"):
                    media = resolve(document, response).get("content", {}).get("application/json")
                    if media is not None and "schema" in media:
                        yield method, path, media["schema"]


def test_secrets_show_only_in_the_secrets_object(document: dict[str, Any]) -> None:
    faults = []
    for method, path, schema in _success(document):
        for name in _names(document, schema, "$"):
            parts = name.split(".")
            if _SECRET.search(parts[-1]) and parts[-2:-1] != ["secrets"]:
                faults.append(f"{method} {path}: {name} outside secrets")
            if parts[-2:-1] == ["secrets"] and not _SECRET.search(parts[-1]):
                faults.append(f"{method} {path}: {name} is not a secret")
    assert faults == [], "\n".join(faults)


def test_each_minting_route_answers_the_resource_plus_secrets(document: dict[str, Any]) -> None:
    answered = {(m, p): s for m, p, s in _success(document)}
    for route, (resource, secret) in _MINTING.items():
        props = _properties(document, answered[route])
        own = _properties(document, document["components"]["schemas"][resource])
        assert set(props) == set(own) | {"secrets"}, route
        assert set(_properties(document, props["secrets"])) == {secret}, route


def test_the_secret_rule_names_what_it_should() -> None:
    assert [n for n in ("key", "sip_password", "signing_secret", "masked_key", "key_id", "secret_hash")
            if _SECRET.search(n)] == ["key", "sip_password", "signing_secret"]
