"""One API shape (docs/api.md): every list route answers the one envelope the code encodes."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import msgspec
import pytest

from controlplane.http.body import read_body
from controlplane.http.openapi import build_document
from controlplane.http.pagination import page_limit
from controlplane.http.problems import Problem, problem_response
from controlplane.plugin_list import PLUGINS
from controlplane.shared.pagination import ListPage

# Not lists but reports/results that carry a list among other figures.
_REPORTS = {"getE911Compliance"}


def _document() -> dict[str, Any]:
    return build_document(p.package for p in PLUGINS)


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _list_operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """operationId -> 200 schema of every GET answering a list (``items`` or ``data``, the old key)."""
    found = {}
    for item in document["paths"].values():
        op = item.get("get")
        content = (op or {}).get("responses", {}).get("200", {}).get("content", {})
        if "application/json" not in content:
            continue
        schema = _resolve(document, content["application/json"]["schema"])
        props = schema.get("properties", {})
        if any(_resolve(document, props[key]).get("type") == "array" for key in ("items", "data") if key in props):
            found[op["operationId"]] = schema
    return found


def test_every_list_route_documents_the_one_envelope_the_code_encodes() -> None:
    envelope = set(ListPage.__struct_fields__)
    assert envelope == {"items", "next_cursor", "has_more"}
    lists = _list_operations(_document())
    assert len(lists) >= 15, sorted(lists)  # the routes docs/api.md tables
    for operation, schema in lists.items():
        if operation in _REPORTS:
            continue
        assert set(schema["properties"]) == envelope, operation
        assert set(schema.get("required", [])) == envelope, operation


def test_the_envelope_encodes_as_documented() -> None:
    assert msgspec.json.decode(msgspec.json.encode(ListPage.of([1], "c"))) == {
        "items": [1], "next_cursor": "c", "has_more": True}
    assert msgspec.json.decode(msgspec.json.encode(ListPage.of([]))) == {
        "items": [], "next_cursor": None, "has_more": False}


class _Inner(msgspec.Struct, forbid_unknown_fields=True):
    a: int


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    n: int
    kind: Literal["a", "b"]
    inner: _Inner | None = None
    xs: list[int] = []


class _Request:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    async def read(self) -> bytes:
        return self.raw


def _refusal(raw: bytes) -> dict[str, Any]:
    async def read() -> Problem:
        try:
            await read_body(_Request(raw), _Body)  # type: ignore[arg-type]  # only .read() is used
        except Problem as problem:
            return problem
        raise AssertionError("accepted")
    decoded: dict[str, Any] = msgspec.json.decode(problem_response(asyncio.run(read()), "req_1").text or "")
    return decoded


def test_a_422_lists_every_field_at_fault_with_a_code() -> None:
    body = _refusal(b'{"n": "x", "kind": "c", "inner": {"a": "q", "z": 1}, "xs": [1, "a"], "zz": 1}')
    assert body["code"] == "invalid" and body["status"] == 422 and body["field"] == "n"
    assert [e["field"] for e in body["errors"]] == ["n", "kind", "inner.a", "inner.z", "xs", "zz"]
    assert body["errors"][5] == {"field": "zz", "message": "zz: Object contains unknown field `zz`"}


def test_a_missing_field_is_listed_and_one_fault_is_one_error() -> None:
    body = _refusal(b'{"kind": "a"}')
    assert body["errors"] == [{"field": "n", "message": "n: Object missing required field `n`"}]


def test_every_problem_carries_a_code_its_own_or_its_status() -> None:
    def render(problem: Problem) -> dict[str, Any]:
        decoded: dict[str, Any] = msgspec.json.decode(problem_response(problem, "r").text or "")
        return decoded
    own = render(Problem(409, "cap reached", code="usage_limit"))
    assert (own["type"], own["code"]) == ("about:blank#usage_limit", "usage_limit") and "errors" not in own
    assert render(Problem(404, "no such tenant"))["code"] == "not_found"
    assert render(Problem(429, "slow down"))["code"] == "rate_limited"
    one = render(Problem(422, "limit must be 1-100", field="limit"))
    assert one["errors"] == [{"field": "limit", "message": "limit must be 1-100"}]


def test_truncated_json_is_one_error_not_a_crash() -> None:
    assert _refusal(b"[")["errors"] == [{"field": "body", "message": "body: Expected `object`, got `array`"}]


def test_every_list_route_pages_1_to_100() -> None:
    document = _document()
    for path, item in document["paths"].items():
        for param in item.get("get", {}).get("parameters", []):
            param = _resolve_parameter(document, param)
            if param.get("name") == "limit" and param.get("in") == "query":
                schema = param["schema"]
                assert (schema.get("minimum"), schema.get("maximum"), "enum" in schema) == (1, 100, False), path
    assert [page_limit({"limit": raw}) for raw in ("1", "100")] == [1, 100]
    assert page_limit({}) == 20 and page_limit({}, 100) == 100
    for raw in ("0", "101", "+5", "1e2", " 7", "", "٣"):
        with pytest.raises(Problem) as refused:
            page_limit({"limit": raw})
        assert refused.value.field == "limit"


def _resolve_parameter(document: dict[str, Any], param: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in param:
        found: dict[str, Any] = document["components"]["parameters"][param["$ref"].rsplit("/", 1)[1]]
        return found
    return param
