"""Tenant scope (404 outside it), 409/422 answers, and the per-key and per-partner rate limits."""

from __future__ import annotations

import asyncpg
from api_support import Api, api_for
from inventory_support import buy_did

from controlplane.http.ratelimit import RateLimiter


async def test_a_key_scoped_to_t1_t2_cannot_see_or_touch_t3(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    t1, t2, t3 = (
        await api.tenant(pid, "Scoped 1"), await api.tenant(pid, "Scoped 2"), await api.tenant(pid, "Scoped 3"))
    did = await buy_did(pool, pid, "+15552001003")
    assert (await api.call("PATCH", f"/v1/dids/{did}", partner=pid, json={"tenant_id": t3})).status == 200
    key, _ = await api.key(pid, ["tenants:write", "extensions:write", "phone_numbers:write"], tenant_ids=[t1, t2])
    assert (await api.call("GET", f"/v1/tenants/{t1}", token=key)).status == 200
    for method, path, body in (("GET", f"/v1/tenants/{t3}", None), ("PATCH", f"/v1/tenants/{t3}", {"name": "X"}),
                               ("DELETE", f"/v1/tenants/{t3}", None),
                               ("GET", f"/v1/tenants/{t3}/extensions", None),
                               ("POST", f"/v1/tenants/{t3}/extensions", {"number": "100", "display_name": "A"}),
                               ("GET", f"/v1/dids/{did}", None),
                               ("PATCH", f"/v1/dids/{did}", {"cnam": "X"})):
        r = await api.call(method, path, token=key, json=body)
        assert r.status == 404, (method, path, r.body)
    listed = await api.call("GET", "/v1/tenants", token=key, params={"limit": "100"})
    assert {t["id"] for t in listed.body["items"]} == {t1, t2}
    assert (await api.call("GET", "/v1/dids", token=key)).body["items"] == []
    csv = await api.call("GET", "/v1/tenants/export", token=key)
    assert csv.status == 200 and t3 not in csv.text and t1 in csv.text and t2 in csv.text
    # an assignable DID of the partner cannot be moved into T3 through the key either
    did2 = await buy_did(pool, pid, "+15552001004")
    await api.call("PATCH", f"/v1/dids/{did2}", partner=pid, json={"tenant_id": t1})
    assert (await api.call("PATCH", f"/v1/dids/{did2}", token=key, json={"tenant_id": t3})).status == 404
    assert (await api.call("PATCH", f"/v1/dids/{did2}", token=key, json={"tenant_id": t2})).status == 200


async def test_another_partners_tenant_is_404_for_a_key(api: Api) -> None:
    mine, theirs = await api.partner(), await api.partner()
    t = await api.tenant(theirs)
    key, _ = await api.key(mine, ["tenants:read"])
    assert (await api.call("GET", f"/v1/tenants/{t}", token=key)).status == 404


async def test_409_and_422_name_what_is_wrong(api: Api) -> None:
    pid = await api.partner()
    t1 = await api.tenant(pid)
    _, record = await api.key(pid, ["tenants:read"])
    r = await api.call("PATCH", f"/v1/api-keys/{record['id']}", partner=pid, json={"name": "Renamed"})
    assert r.status == 409 and r.body["field"] == "name"
    r = await api.call("PATCH", f"/v1/api-keys/{record['id']}", partner=pid,
                       json={"scopes": ["calls:read"], "tenant_ids": [t1], "rate_limit": 500})
    assert r.status == 200 and r.body["scopes"] == ["calls:read"] and r.body["tenant_ids"] == [t1]
    for body, field in (({"name": "k", "scopes": ["tenants:delete"]}, "scopes"),
                        ({"name": "k", "scopes": ["tenants:read"], "rate_limit": 10_001}, "rate_limit"),
                        ({"name": "k", "scopes": ["tenants:read"], "tenant_ids": ["ten_nope"]}, "tenant_ids"),
                        ({"name": "k", "scopes": ["tenants:read"], "expires_at": "2001-01-01T00:00:00Z"},
                         "expires_at"),
                        ({"name": "k"}, "scopes")):
        r = await api.call("POST", "/v1/api-keys", partner=pid, json=body)
        assert r.status == 422 and r.body["field"] == field, (body, r.body)


async def test_429_with_retry_after_over_the_key_limit(api: Api) -> None:
    pid = await api.partner()
    key, record = await api.key(pid, ["tenants:read"], rate_limit=1)
    first = await api.call("GET", "/v1/tenants", token=key)
    assert first.status == 200 and first.headers["X-RateLimit-Remaining"] == "0"
    r = await api.call("GET", "/v1/tenants", token=key)
    assert r.status == 429 and r.headers["Retry-After"] == "60"  # 1/min: the token is back in 60 s
    assert r.body["limit_scope"] == "key" and r.body["request_id"] == r.headers["X-Request-Id"]
    # raising the limit takes effect for the key's next lookup
    await api.call("PATCH", f"/v1/api-keys/{record['id']}", partner=pid, json={"rate_limit": 120})
    assert (await api.call("GET", "/v1/tenants", token=key)).status == 200


async def test_429_over_the_partner_wide_limit_across_keys(pool: asyncpg.Pool) -> None:
    now = [0.0]
    async with api_for(pool, RateLimiter(partner_limit=3, clock=lambda: now[0])) as api:
        pid = await api.partner()
        keys = [(await api.key(pid, ["tenants:read"]))[0] for _ in range(2)]
        statuses = [(await api.call("GET", "/v1/tenants", token=keys[i % 2])).status for i in range(3)]
        assert statuses == [200, 200, 200]
        r = await api.call("GET", "/v1/tenants", token=keys[1])
        assert r.status == 429 and r.body["limit_scope"] == "partner" and r.headers["Retry-After"] == "20"
        now[0] += 20
        assert (await api.call("GET", "/v1/tenants", token=keys[0])).status == 200
        other = await api.partner()  # another partner is not held back
        assert (await api.call("GET", "/v1/tenants", token=(await api.key(other, ["tenants:read"]))[0])).status == 200
