"""Every secured route declares the scope an API key needs (access.py fails closed)."""

from __future__ import annotations

from aiohttp import web

from controlplane.http.access import PLATFORM, PORTAL, SCOPES, operation_access
from controlplane.http.app import make_app
from controlplane.http.openapi import openapi_document
from controlplane.plugins import Context


def _app() -> web.Application:
    from controlplane.daemon import PLUGINS

    return make_app(service_token_value="t", probes=[], plugins=PLUGINS,
                    context=Context(config=None, pool=None))  # type: ignore[arg-type]


def test_every_secured_operation_has_a_known_scope() -> None:
    table = operation_access(_app()[openapi_document])
    missing = sorted(f"{m} {p}" for (m, p), a in table.items() if a.scope is None)
    assert missing == [], "operations without x-scope (add it to the plugin's openapi.yaml)"
    unknown = {a.scope for a in table.values()} - set(SCOPES) - {PORTAL, PLATFORM}
    assert unknown == set()


def test_secured_operations_document_403_429_and_their_scope() -> None:
    doc = _app()[openapi_document]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in {"get", "put", "post", "patch", "delete"} or op.get("security") == []:
                continue
            assert {"401", "403", "429"} <= set(op["responses"]), f"{method} {path}"
            if op["x-scope"] == PLATFORM:
                assert op["security"] == [{"platformToken": []}], f"{method} {path}"
            elif op["x-scope"] != PORTAL:
                assert {"apiKey": [op["x-scope"]]} in op["security"], f"{method} {path}"
            if method == "post":
                refs = [p.get("$ref", "") for p in op["parameters"]]
                assert "#/components/parameters/IdempotencyKey" in refs, f"{method} {path}"


def test_key_management_and_audit_are_the_portals_only() -> None:
    doc = _app()[openapi_document]
    for path in ("/v1/api-keys", "/v1/api-keys/{key_id}", "/v1/api-keys/{key_id}/revoke", "/v1/audit-events"):
        for method, op in doc["paths"][path].items():
            if method != "parameters":
                assert op["x-scope"] == PORTAL, f"{method} {path}"


def test_the_platform_operations_are_exactly_the_documented_ones() -> None:
    """docs/platform.md lists these; a new platform operation updates both."""
    doc = _app()[openapi_document]
    platform = {(method.upper(), path) for path, item in doc["paths"].items() for method, op in item.items()
                if isinstance(op, dict) and op.get("x-scope") == PLATFORM}
    assert platform == {
        ("POST", "/v1/number-inventory"), ("POST", "/v1/dids"), ("POST", "/v1/wallet/credits"), ("POST", "/v1/wallet/adjustments"),
        ("POST", "/v1/ports/{port_id}/submit"), ("POST", "/v1/ports/{port_id}/foc"),
        ("POST", "/v1/ports/{port_id}/complete"), ("POST", "/v1/ports/{port_id}/reject"),
        # the account's (docs/account.md): tier prices, Enterprise prices, comp activation
        ("GET", "/v1/tier-prices"), ("POST", "/v1/tier-prices"), ("PUT", "/v1/partners/{partner_id}/enterprise-prices"),
        ("POST", "/v1/partners/{partner_id}/activation"),
        # the reports' (docs/reports.md): the operator's view across partners
        ("GET", "/v1/platform/reports/overview"), ("GET", "/v1/platform/reports/overview/export"),
        ("GET", "/v1/platform/nodes"), ("PUT", "/v1/platform/nodes/{node_id}"),
        ("GET", "/v1/platform/tenants/{tenant_id}/node"), ("PUT", "/v1/platform/tenants/{tenant_id}/node")}
    # What a partner keeps of the port lifecycle.
    for step in ("resubmit", "cancel"):
        assert doc["paths"][f"/v1/ports/{{port_id}}/{step}"]["post"]["x-scope"] == "phone_numbers:write"
