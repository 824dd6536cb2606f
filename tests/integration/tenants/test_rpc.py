"""The tenants RPC against a real PostgreSQL: model rules, pagination, caps, lifecycle."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import asyncpg
import pytest
from inventory_support import buy_did
from tenants_client import Rpc, rpc_for


@pytest.fixture(scope="module")
async def rpc(pool: asyncpg.Pool) -> AsyncIterator[Rpc]:
    async with rpc_for(pool) as client:
        yield client


async def partner(rpc: Rpc, tier: str = "BUSINESS") -> str:
    status, body = await rpc.call("POST", "/v1/partners", json={"name": "Reseller One", "tier": tier})
    assert status == 201, body
    return str(body["id"])


async def tenant(rpc: Rpc, pid: str, name: str = "ACME Plumbing", **fields: object) -> dict:
    status, body = await rpc.call("POST", "/v1/tenants", partner=pid,
                                  json={"name": name, "billing_email": "billing@acme.test", **fields})
    assert status == 201, body
    return dict(body)


async def test_service_token_is_required(rpc: Rpc) -> None:
    status, body = await rpc.call("GET", "/v1/partners", token="wrong")
    assert status == 401 and body["status"] == 401


async def test_tenant_defaults_prefix_suggestion_and_uniqueness(rpc: Rpc) -> None:
    pid = await partner(rpc)
    assert (await rpc.call("PUT", "/v1/tenant-defaults", partner=pid,
                           json={"timezone": "America/Chicago", "default_cnam": "RESELLER"}))[0] == 200
    first = await tenant(rpc, pid, "Globex Corp")
    assert first["sip_prefix"] == "globexcorp" and first["status"] == "TRIAL"
    assert first["timezone"] == "America/Chicago" and first["default_cnam"] == "RESELLER"
    second = await tenant(rpc, pid, "Globex Corp")
    assert second["sip_prefix"] == "globexcorp2"
    status, body = await rpc.call("POST", "/v1/tenants", partner=pid,
                                  json={"name": "X", "billing_email": "a@b.co", "sip_prefix": "globexcorp"})
    assert status == 409 and body["field"] == "sip_prefix"


async def test_immutable_fields(rpc: Rpc) -> None:
    pid = await partner(rpc)
    t = await tenant(rpc, pid, "Immutable Inc", sip_prefix="immut")
    for field, value in (("sip_prefix", "other"), ("partner_id", "ptr_x"), ("created_at", "2020-01-01")):
        status, body = await rpc.call("PATCH", f"/v1/tenants/{t['id']}", partner=pid, json={field: value})
        assert status == 409 and body["field"] == field, body
    status, body = await rpc.call("PATCH", f"/v1/tenants/{t['id']}", partner=pid,
                                  json={"sip_prefix": "immut", "name": "Immutable Two"})
    assert status == 200 and body["name"] == "Immutable Two"


async def test_timezone_and_cnam_validation(rpc: Rpc) -> None:
    pid = await partner(rpc)
    for fields, field in (({"timezone": "Mars/Olympus"}, "timezone"), ({"default_cnam": "A" * 16}, "default_cnam"),
                          ({"status": "GONE"}, "status"), ({"sip_prefix": "AB"}, "sip_prefix")):
        status, body = await rpc.call("POST", "/v1/tenants", partner=pid,
                                      json={"name": "Valid", "billing_email": "a@b.co", **fields})
        assert status == 422 and body["field"] == field, body


async def test_tenants_of_another_partner_are_invisible(rpc: Rpc) -> None:
    mine, theirs = await partner(rpc), await partner(rpc)
    t = await tenant(rpc, theirs, "Theirs")
    assert (await rpc.call("GET", f"/v1/tenants/{t['id']}", partner=mine))[0] == 404
    assert (await rpc.call("GET", "/v1/tenants", partner=mine))[1]["items"] == []


async def test_pagination_is_stable_under_inserts(rpc: Rpc) -> None:
    pid = await partner(rpc)
    created = [(await tenant(rpc, pid, f"Paged {i}"))["id"] for i in range(25)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        status, body = await rpc.call("GET", "/v1/tenants", partner=pid, params=params)
        assert status == 200
        seen += [t["id"] for t in body["items"]]
        if len(seen) == 10:
            created.append((await tenant(rpc, pid, "Inserted Meanwhile"))["id"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == created
    assert (await rpc.call("GET", "/v1/tenants", partner=pid, params={"limit": "101"}))[0] == 422
    assert (await rpc.call("GET", "/v1/tenants", partner=pid, params={"cursor": "garbage!"}))[0] == 422
    status, body = await rpc.call("GET", "/v1/tenants", partner=pid, params={"q": "inserted"})
    assert [t["name"] for t in body["items"]] == ["Inserted Meanwhile"]


async def test_extension_password_is_returned_once_and_stored_as_digest(rpc: Rpc, pool: asyncpg.Pool) -> None:
    pid = await partner(rpc)
    t = await tenant(rpc, pid, "Digest Co", sip_prefix="digest")
    status, body = await rpc.call("POST", f"/v1/tenants/{t['id']}/extensions", partner=pid,
                                  json={"number": "101", "display_name": "Alice"})
    assert status == 201, body
    password, ext_id = body["secrets"]["sip_password"], body["id"]
    assert body["sip_username"] == "digest_101" and set(body["secrets"]) == {"sip_password"}
    ha1 = hashlib.md5(f"digest_101:controlplane:{password}".encode()).hexdigest()
    row = await pool.fetchrow("SELECT * FROM ps_auths WHERE id = 'digest_101'")
    assert row["md5_cred"] == ha1 and row["password"] is None
    endpoint = await pool.fetchrow("SELECT * FROM ps_endpoints WHERE id = 'digest_101'")
    assert endpoint["accountcode"] == t["id"] and endpoint["context"] == "digest-internal"
    assert endpoint["set_var"] == f"__TENANT_ID={t['id']}"
    stored = await pool.fetchval("SELECT sip_ha1 FROM extensions WHERE id = $1", ext_id)
    assert stored == ha1 and password not in str(dict(await pool.fetchrow("SELECT * FROM extensions WHERE id=$1", ext_id)))
    status, got = await rpc.call("GET", f"/v1/tenants/{t['id']}/extensions/{ext_id}", partner=pid)
    assert status == 200 and "sip_password" not in got
    status, reset = await rpc.call("POST", f"/v1/tenants/{t['id']}/extensions/{ext_id}/reset-password", partner=pid)
    assert status == 200 and reset["secrets"]["sip_password"] != password
    assert await pool.fetchval("SELECT md5_cred FROM ps_auths WHERE id = 'digest_101'") != ha1
    dup = await rpc.call("POST", f"/v1/tenants/{t['id']}/extensions", partner=pid,
                         json={"number": "101", "display_name": "Again"})
    assert dup[0] == 409
    assert (await rpc.call("PATCH", f"/v1/tenants/{t['id']}/extensions/{ext_id}", partner=pid,
                           json={"number": "102"}))[0] == 409
    assert (await rpc.call("DELETE", f"/v1/tenants/{t['id']}/extensions/{ext_id}", partner=pid))[0] == 204
    assert await pool.fetchval("SELECT count(*) FROM ps_endpoints WHERE id = 'digest_101'") == 0


async def test_starter_tier_caps_extensions_at_300(rpc: Rpc, pool: asyncpg.Pool) -> None:
    pid = await partner(rpc, "STARTER")
    t1 = await tenant(rpc, pid, "Cap One", sip_prefix="capone")
    t2 = await tenant(rpc, pid, "Cap Two", sip_prefix="captwo")
    # 299 straight into the table (the cap counts rows), then the 300th and 301st via the RPC.
    await pool.executemany(
        "INSERT INTO extensions (id, tenant_id, number, display_name, sip_ha1) VALUES ($1, $2, $3, 'x', 'h')",
        [(f"ext_cap_{n}", t1["id"], str(1000 + n)) for n in range(299)])
    status, body = await rpc.call("POST", f"/v1/tenants/{t2['id']}/extensions", partner=pid,
                                  json={"number": "200", "display_name": "Three Hundred"})
    assert status == 201, body
    status, body = await rpc.call("POST", f"/v1/tenants/{t2['id']}/extensions", partner=pid,
                                  json={"number": "201", "display_name": "One Too Many"})
    assert status == 409 and body["type"].endswith("#extension_limit"), body
    assert "300" in body["detail"] and "Professional" in body["detail"], body
    assert body["title"] == "Conflict"


async def test_suspended_tenant_gets_no_new_extensions(rpc: Rpc) -> None:
    pid = await partner(rpc)
    t = await tenant(rpc, pid, "Sleepy", status="SUSPENDED")
    status, body = await rpc.call("POST", f"/v1/tenants/{t['id']}/extensions", partner=pid,
                                  json={"number": "101", "display_name": "Nope"})
    assert status == 409 and "SUSPENDED" in body["detail"]


async def test_did_assignment_and_tenant_cancellation_lifecycle(rpc: Rpc, pool: asyncpg.Pool) -> None:
    pid = await partner(rpc)
    t = await tenant(rpc, pid, "Lifecycle Ltd", sip_prefix="lifecyc")
    ext = (await rpc.call("POST", f"/v1/tenants/{t['id']}/extensions", partner=pid,
                          json={"number": "101", "display_name": "Lee"}))[1]
    status, did = await rpc.call("GET", f"/v1/dids/{await buy_did(pool, pid, '+15015550100')}", partner=pid)
    assert status == 200 and did["tenant_id"] is None
    # No DID from nothing: the portal acting for the partner gets 403 (POST /v1/dids is the platform's).
    status, body = await rpc.call("POST", "/v1/dids", partner=pid, json={"number": "+15015550101"})
    assert status == 403 and body["type"].endswith("#platform_only")
    status, did = await rpc.call("PATCH", f"/v1/dids/{did['id']}", partner=pid,
                                 json={"tenant_id": t["id"], "extension_id": ext["id"]})
    assert status == 200 and did["tenant_id"] == t["id"]
    status, page = await rpc.call("GET", "/v1/dids", partner=pid, params={"assigned": "true"})
    assert [d["id"] for d in page["items"]] == [did["id"]]
    # Deleting with DIDs assigned needs the name typed back.
    status, body = await rpc.call("DELETE", f"/v1/tenants/{t['id']}", partner=pid)
    assert status == 409 and body["field"] == "confirm"
    status, body = await rpc.call("DELETE", f"/v1/tenants/{t['id']}", partner=pid, params={"confirm": "wrong"})
    assert status == 409
    status, body = await rpc.call("DELETE", f"/v1/tenants/{t['id']}", partner=pid,
                                  params={"confirm": "Lifecycle Ltd"})
    assert status == 200 and body["status"] == "CANCELLED" and body["purge_after"]
    assert await pool.fetchval("SELECT count(*) FROM ps_endpoints WHERE tenant_id = $1", t["id"]) == 0
    released = (await rpc.call("GET", f"/v1/dids/{did['id']}", partner=pid))[1]
    assert released["tenant_id"] is None and released["status"] == "RELEASED"
    assert (await rpc.call("PATCH", f"/v1/tenants/{t['id']}", partner=pid, json={"name": "Still here"}))[0] == 409
    # Reactivation within 90 days restores endpoints and the DID.
    status, body = await rpc.call("PATCH", f"/v1/tenants/{t['id']}", partner=pid, json={"status": "ACTIVE"})
    assert status == 200 and body["cancelled_at"] is None
    assert await pool.fetchval("SELECT count(*) FROM ps_endpoints WHERE tenant_id = $1", t["id"]) == 1
    restored = (await rpc.call("GET", f"/v1/dids/{did['id']}", partner=pid))[1]
    assert restored["tenant_id"] == t["id"] and restored["extension_id"] == ext["id"]
    assert restored["status"] == "ACTIVE"
    events = await pool.fetch("SELECT type FROM events WHERE tenant_id = $1 ORDER BY created_at", t["id"])
    assert {"tenant.created", "extension.created", "phone_number.assigned", "tenant.deleted"} <= {
        e["type"] for e in events}


async def test_purge_after_90_days(rpc: Rpc, pool: asyncpg.Pool) -> None:
    from controlplane.tenants.store import purge_expired
    pid = await partner(rpc)
    t = await tenant(rpc, pid, "Old Timer")
    await rpc.call("DELETE", f"/v1/tenants/{t['id']}", partner=pid)
    await pool.execute("UPDATE tenants SET cancelled_at = now() - interval '91 days' WHERE id = $1", t["id"])
    async with pool.acquire() as conn, conn.transaction():
        assert t["id"] in await purge_expired(conn)
    assert (await rpc.call("GET", f"/v1/tenants/{t['id']}", partner=pid))[0] == 404
