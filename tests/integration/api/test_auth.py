"""Who may call: 401s, 403s, the revocation bound, last-used bookkeeping, request ids."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from api_support import Api, api_for

from controlplane.apikeys import store
from controlplane.apikeys.auth import CACHE_TTL, KeyAuthenticator
from controlplane.db.connection import Executor
from controlplane.http.middleware import key_authenticator


async def test_key_is_shown_once_stored_as_a_hash_and_masked(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    key, record = await api.key(pid, ["tenants:read"])
    assert key.startswith("sk_live_") and len(key) >= 40
    assert record["masked_key"] == f"sk_live_...{key[-4:]}" and record["status"] == "ACTIVE"
    shown = await api.call("GET", f"/v1/api-keys/{record['id']}", partner=pid)
    assert key not in shown.text and shown.body["masked_key"] == record["masked_key"]
    stored = await pool.fetchval("SELECT secret_hash FROM api_keys WHERE id = $1", record["id"])
    assert bytes(stored) == hashlib.sha256(key.encode()).digest()
    assert (await api.call("GET", "/v1/tenants", token=key)).status == 200


async def test_401_for_missing_invalid_expired_and_revoked_keys(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    for token in (None, "sk_live_" + "x" * 43, "not-the-token"):
        r = await api.call("GET", "/v1/tenants", token=token)
        assert r.status == 401 and r.headers["Content-Type"].startswith("application/problem+json")
        assert r.body["request_id"] == r.headers["X-Request-Id"]
    key, record = await api.key(pid, ["tenants:read"],
                                expires_at=(datetime.now(UTC) + timedelta(seconds=0.5)).isoformat())
    assert (await api.call("GET", "/v1/tenants", token=key)).status == 200  # now cached
    await asyncio.sleep(0.6)
    r = await api.call("GET", "/v1/tenants", token=key)  # expiry is checked on every request, cache or not
    assert r.status == 401 and r.body["type"].endswith("key_expired")
    listed = await api.call("GET", "/v1/api-keys", partner=pid, params={"status": "EXPIRED"})
    assert [k["id"] for k in listed.body["items"]] == [record["id"]]
    key2, record2 = await api.key(pid, ["tenants:read"])
    assert (await api.call("POST", f"/v1/api-keys/{record2['id']}/revoke", partner=pid)).body["status"] == "REVOKED"
    r = await api.call("GET", "/v1/tenants", token=key2)
    assert r.status == 401 and r.body["type"].endswith("key_revoked")


async def test_revocation_reaches_another_instance_within_the_cache_ttl(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    key, record = await api.key(pid, ["tenants:read"])
    async with api_for(pool) as other:  # a second daemon instance: its own cache
        now = [1000.0]
        other.app[key_authenticator].clock = lambda: now[0]  # type: ignore[attr-defined]
        assert (await other.call("GET", "/v1/tenants", token=key)).status == 200  # cached now
        await api.call("POST", f"/v1/api-keys/{record['id']}/revoke", partner=pid)
        assert (await api.call("GET", "/v1/tenants", token=key)).status == 401  # this instance: at once
        now[0] += CACHE_TTL - 1
        assert (await other.call("GET", "/v1/tenants", token=key)).status == 200  # still cached
        now[0] += 1.01
        assert (await other.call("GET", "/v1/tenants", token=key)).status == 401  # bound: CACHE_TTL
    assert CACHE_TTL <= 60


async def test_an_uncached_key_presented_by_many_requests_at_once_is_read_once(
        api: Api, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    pid = await api.partner()
    key, record = await api.key(pid, ["tenants:read"])
    reads: list[bytes] = []
    real = store.by_hash

    async def by_hash(executor: Executor, digest: bytes) -> asyncpg.Record | None:
        reads.append(digest)
        return await real(executor, digest)

    monkeypatch.setattr(store, "by_hash", by_hash)
    async with api_for(pool) as other:  # a second instance: nothing cached
        answers = await asyncio.gather(*(other.call("GET", "/v1/tenants", token=key) for _ in range(20)))
        assert [a.status for a in answers] == [200] * 20
        assert len(reads) == 1
        # a change made while a read is in flight keeps that read's answer out of the cache
        started = asyncio.Event()

        async def slow(executor: Executor, digest: bytes) -> asyncpg.Record | None:
            started.set()
            await asyncio.sleep(0.2)
            return await by_hash(executor, digest)

        monkeypatch.setattr(store, "by_hash", slow)
        wrong = asyncio.create_task(other.call("GET", "/v1/tenants", token="sk_live_" + "x" * 43))
        await started.wait()
        other.app[key_authenticator].forget(record["id"])  # type: ignore[attr-defined]
        assert (await wrong).status == 401
        assert (await other.call("GET", "/v1/tenants", token="sk_live_" + "x" * 43)).status == 401
    assert len(reads) == 3  # the second unknown key was read again: the first answer was not kept


async def test_403_for_missing_scope_portal_routes_and_partner_wide_routes(api: Api) -> None:
    pid = await api.partner()
    t1 = await api.tenant(pid)
    reader, _ = await api.key(pid, ["tenants:read"])
    r = await api.call("POST", "/v1/tenants", token=reader, json={"name": "N", "billing_email": "a@b.co"})
    assert r.status == 403 and r.body["required_scope"] == "tenants:write"
    assert (await api.call("GET", f"/v1/tenants/{t1}/extensions", token=reader)).status == 403
    for method, path in (("GET", "/v1/api-keys"), ("POST", "/v1/partners"), ("GET", "/v1/audit-events")):
        assert (await api.call(method, path, token=reader, json={})).status == 403, path
    writer, _ = await api.key(pid, ["tenants:write"])  # write implies read
    assert (await api.call("GET", f"/v1/tenants/{t1}", token=writer)).status == 200
    scoped, _ = await api.key(pid, ["tenants:write", "webhooks:read"], tenant_ids=[t1])
    assert (await api.call("GET", "/v1/events", token=scoped)).status == 403
    assert (await api.call("PUT", "/v1/tenant-defaults", token=scoped, json={})).status == 403
    other = await api.partner()
    assert (await api.call("GET", "/v1/tenants", token=reader, partner=other)).status == 403


async def test_last_used_is_written_at_most_once_a_minute(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    key, record = await api.key(pid, ["tenants:read"])
    assert record["last_used_at"] is None
    await api.call("GET", "/v1/tenants", token=key)
    first = None
    for _ in range(50):
        first = await pool.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", record["id"])
        if first is not None:
            break
        await asyncio.sleep(0.02)
    assert first is not None
    await api.call("GET", "/v1/tenants", token=key)
    await asyncio.sleep(0.1)
    assert await pool.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", record["id"]) == first
    assert isinstance(api.app[key_authenticator], KeyAuthenticator)


async def test_every_response_carries_a_request_id(api: Api) -> None:
    for path, token in (("/healthz", None), ("/v1/nowhere", "portal-token"), ("/v1/tenants", None)):
        r = await api.call("GET", path, token=token)
        assert r.headers.get("X-Request-Id", "").startswith("req_"), path
    r = await api.call("GET", "/v1/tenants", token=None, headers={"X-Request-Id": "mine-123"})
    assert r.headers["X-Request-Id"] == "mine-123" and r.body["request_id"] == "mine-123"
