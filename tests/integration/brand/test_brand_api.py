"""Company, brand, logo and notification settings over real HTTP on real PostgreSQL: defaults,
partial updates, and every bad input answered 422 naming each field with nothing changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from api_support import PLUGINS, TOKEN, Api, api_for
from controlplane.brand.plugin import PLUGIN as BRAND

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10"/></svg>'


@pytest.fixture(scope="module")
async def api(pool: asyncpg.Pool) -> AsyncIterator[Api]:
    async with api_for(pool, plugins=[*PLUGINS, BRAND]) as client:
        yield client


async def _upload(api: Api, pid: str, content_type: str, data: bytes, token: str = TOKEN) -> tuple[int, Any]:
    resp = await api.client.put("/v1/account/brand/logo", data=data, headers={
        "Authorization": f"Bearer {token}", "X-Partner-Id": pid, "Content-Type": content_type})
    return resp.status, await resp.json(content_type=None)


def _fields(body: Any) -> list[str]:
    return sorted(e["field"] for e in body["errors"])


async def test_defaults_follow_the_partner_and_company_names(api: Api) -> None:
    pid = await api.partner()
    company = await api.call("GET", "/v1/account/company", partner=pid)
    assert company.status == 200 and company.body == {"company_name": "Reseller", "billing_email": None}
    brand = await api.call("GET", "/v1/account/brand", partner=pid)
    assert brand.body == {"brand_name": "Reseller", "primary_color": None, "from_email": None,
                          "support_email": None, "statement_descriptor": None, "logo": None}
    changed = await api.call("PUT", "/v1/account/company", partner=pid,
                             json={"company_name": "ACME Telecom LLC", "billing_email": "billing@acme.example"})
    assert changed.status == 200 and changed.body["billing_email"] == "billing@acme.example"
    assert (await api.call("GET", "/v1/account/brand", partner=pid)).body["brand_name"] == "ACME Telecom LLC"
    notes = await api.call("GET", "/v1/account/notifications", partner=pid)
    assert notes.body == {"new_tenant_signups": False, "usage_alerts": True, "monthly_reports": True,
                          "system_updates": True}


async def test_brand_updates_are_partial_and_normalised(api: Api) -> None:
    pid = await api.partner()
    r = await api.call("PUT", "/v1/account/brand", partner=pid, json={
        "brand_name": "ACME Phones", "primary_color": "#1A73E8", "from_email": "noreply@acme.example",
        "support_email": "help@acme.example", "statement_descriptor": "ACME PHONES"})
    assert r.status == 200, r.body
    assert r.body["primary_color"] == "#1a73e8" and r.body["statement_descriptor"] == "ACME PHONES"
    r = await api.call("PUT", "/v1/account/brand", partner=pid, json={"primary_color": "#abc", "brand_name": None})
    assert r.body["primary_color"] == "#aabbcc" and r.body["brand_name"] == "Reseller"  # null: the default
    assert r.body["from_email"] == "noreply@acme.example"  # absent: kept


BAD_BRAND = [
    ({"statement_descriptor": "Acme's Phone Co."}, ["statement_descriptor"]),
    ({"statement_descriptor": "THIS IS A REALLY LONG NAME"}, ["statement_descriptor"]),
    ({"statement_descriptor": "ACME"}, ["statement_descriptor"]),
    ({"statement_descriptor": "12345"}, ["statement_descriptor"]),
    ({"primary_color": "blue"}, ["primary_color"]),
    ({"primary_color": "#12345"}, ["primary_color"]),
    ({"from_email": "noreply"}, ["from_email"]),
    ({"support_email": "help@acme"}, ["support_email"]),
    ({"brand_name": "   "}, ["brand_name"]),
    ({"statement_descriptor": "A*B", "primary_color": "#zzz", "from_email": 5, "support_email": "x@",
      "brand_name": "ok", "logo": "x"},
     ["from_email", "logo", "primary_color", "statement_descriptor", "support_email"]),
]


@pytest.mark.parametrize(("body", "fields"), BAD_BRAND)
async def test_bad_brand_input_is_422_naming_each_field_and_changes_nothing(
        api: Api, body: dict[str, Any], fields: list[str]) -> None:
    pid = await api.partner()
    good = {"brand_name": "Kept", "primary_color": "#000000", "from_email": "a@kept.example",
            "support_email": "s@kept.example", "statement_descriptor": "KEPT CO"}
    assert (await api.call("PUT", "/v1/account/brand", partner=pid, json=good)).status == 200
    r = await api.call("PUT", "/v1/account/brand", partner=pid, json=body)
    assert r.status == 422 and r.headers["Content-Type"].startswith("application/problem+json")
    assert _fields(r.body) == fields
    after = await api.call("GET", "/v1/account/brand", partner=pid)
    assert {k: after.body[k] for k in good} == good


@pytest.mark.parametrize(("path", "body", "fields"), [
    ("/v1/account/company", {"billing_email": "billing.acme.example"}, ["billing_email"]),
    ("/v1/account/company", {"billing_email": "a@b.example", "company_name": ""}, ["company_name"]),
    ("/v1/account/company", {"billing_email": ["a@b.example"], "company_name": 7}, ["billing_email", "company_name"]),
    ("/v1/account/notifications", {"usage_alerts": "off", "system_updates": None},
     ["system_updates", "usage_alerts"]),
    ("/v1/account/notifications", {"sms_alerts": True}, ["sms_alerts"]),
    ("/v1/account/company", ["not", "an", "object"], ["body"]),
])
async def test_bad_company_and_notification_input(api: Api, path: str, body: Any, fields: list[str]) -> None:
    pid = await api.partner()
    before = await api.call("GET", path, partner=pid)
    r = await api.call("PUT", path, partner=pid, json=body)
    assert r.status == 422 and _fields(r.body) == fields
    assert (await api.call("GET", path, partner=pid)).body == before.body


async def test_a_toggle_saves_alone(api: Api) -> None:
    pid = await api.partner()
    r = await api.call("PUT", "/v1/account/notifications", partner=pid, json={"usage_alerts": False})
    assert r.status == 200 and r.body["usage_alerts"] is False and r.body["monthly_reports"] is True
    r = await api.call("PUT", "/v1/account/notifications", partner=pid, json={"new_tenant_signups": True})
    assert r.body == {"new_tenant_signups": True, "usage_alerts": False, "monthly_reports": True,
                      "system_updates": True}


async def test_logo_upload_checks_type_by_bytes_and_size(api: Api) -> None:
    pid = await api.partner()
    status, body = await _upload(api, pid, "image/png", PNG)
    assert status == 200 and body["logo"]["content_type"] == "image/png" and body["logo"]["size_bytes"] == len(PNG)
    refused = [
        ("image/png", JPEG),                       # the bytes are a JPEG
        ("image/jpeg", PNG),                       # the bytes are a PNG
        ("image/gif", b"GIF89a" + b"\x00" * 10),   # not a type we take
        ("text/plain", b"hello"),
        ("image/png", PNG + b"\x00" * (512 * 1024)),  # over 512 KiB (under the server's 1 MiB)
        ("image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        ("image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
        ("image/png", b""),
    ]
    for content_type, data in refused:
        status, body = await _upload(api, pid, content_type, data)
        assert status == 422 and _fields(body) == ["logo"], (content_type, status, body)
    resp = await api.client.get("/v1/account/brand/logo", headers={"Authorization": f"Bearer {TOKEN}",
                                                                   "X-Partner-Id": pid})
    assert resp.status == 200 and await resp.read() == PNG  # unchanged by the refused ones
    assert resp.content_type == "image/png" and "default-src 'none'" in resp.headers["Content-Security-Policy"]
    status, body = await _upload(api, pid, "image/svg+xml", SVG)
    assert status == 200 and body["logo"]["content_type"] == "image/svg+xml"
    assert (await api.call("DELETE", "/v1/account/brand/logo", partner=pid)).status == 204
    assert (await api.call("GET", "/v1/account/brand/logo", partner=pid)).status == 404
    assert (await api.call("DELETE", "/v1/account/brand/logo", partner=pid)).status == 404


async def test_an_oversized_body_is_refused_by_the_server(api: Api) -> None:
    pid = await api.partner()
    status, _ = await _upload(api, pid, "image/png", PNG + b"\x00" * (2 * 1024 * 1024))
    assert status == 413


async def test_scopes_and_unknown_partners(api: Api) -> None:
    pid = await api.partner()
    key, _ = await api.key(pid, ["account:read"])
    assert (await api.call("GET", "/v1/account/brand", token=key)).status == 200
    r = await api.call("PUT", "/v1/account/brand", token=key, json={"brand_name": "X"})
    assert r.status == 403 and r.body["required_scope"] == "account:write"
    assert (await _upload(api, pid, "image/png", PNG, token=key))[0] == 403
    writer, _ = await api.key(pid, ["account:write"])
    assert (await api.call("PUT", "/v1/account/notifications", token=writer, json={"usage_alerts": False})).status == 200
    other, _ = await api.key(pid, ["tenants:write"])
    assert (await api.call("GET", "/v1/account/company", token=other)).status == 403
    assert (await api.call("GET", "/v1/account/company", partner="ptr_nobody")).status == 404
    assert (await api.call("PUT", "/v1/account/brand", partner="ptr_nobody", json={"brand_name": "X"})).status == 404
