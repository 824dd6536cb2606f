"""Idempotent POSTs, the audit log, sorted lists and CSV exports, over real HTTP."""

from __future__ import annotations

import asyncio
import csv
import io

import asyncpg
from api_support import Api
from inventory_support import buy_did


async def test_a_retry_replays_the_first_response(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    body = {"name": "Once Only", "billing_email": "a@b.co"}
    first = await api.call("POST", "/v1/tenants", partner=pid, json=body, headers={"Idempotency-Key": "k-1"})
    again = await api.call("POST", "/v1/tenants", partner=pid, json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status == again.status == 201 and first.body == again.body
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert again.headers["Content-Type"].startswith("application/json")
    assert await pool.fetchval("SELECT count(*) FROM tenants WHERE partner_id = $1", pid) == 1
    r = await api.call("POST", "/v1/tenants", partner=pid, json={**body, "name": "Other"},
                       headers={"Idempotency-Key": "k-1"})
    assert r.status == 422 and r.body["field"] == "Idempotency-Key"
    # the key is per caller: another partner's portal request with the same key is its own
    other = await api.partner()
    assert (await api.call("POST", "/v1/tenants", partner=other, json=body,
                           headers={"Idempotency-Key": "k-1"})).status == 201


async def test_concurrent_retries_run_once_and_the_others_get_409(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    body = {"name": "Raced", "billing_email": "a@b.co"}
    replies = await asyncio.gather(*(api.call("POST", "/v1/tenants", partner=pid, json=body,
                                              headers={"Idempotency-Key": "race"}) for _ in range(6)))
    statuses = sorted(r.status for r in replies)
    assert set(statuses) <= {201, 409} and 201 in statuses, statuses
    assert {r.body["id"] for r in replies if r.status == 201} and len(
        {r.body["id"] for r in replies if r.status == 201}) == 1
    for r in replies:
        if r.status == 409:
            assert r.headers["Retry-After"] == "1" and r.body["type"].endswith("idempotency_in_progress")
    assert await pool.fetchval("SELECT count(*) FROM tenants WHERE partner_id = $1", pid) == 1


async def test_audit_records_who_what_and_when_and_survives_the_key(api: Api) -> None:
    pid = await api.partner()
    alice = await api.user(pid)
    created = await api.call("POST", "/v1/tenants", partner=pid, headers={"X-Acting-User": alice},
                             json={"name": "Audited", "billing_email": "a@b.co"})
    tid = created.body["id"]
    key, record = await api.key(pid, ["tenants:write", "extensions:write"])
    await api.call("PATCH", f"/v1/tenants/{tid}", token=key, json={"name": "Audited Two"})
    ext = await api.call("POST", f"/v1/tenants/{tid}/extensions", token=key,
                         json={"number": "101", "display_name": "Desk"})
    await api.call("POST", f"/v1/tenants/{tid}/extensions/{ext.body['id']}/reset-password",
                   token=key)
    assert (await api.call("DELETE", f"/v1/api-keys/{record['id']}", partner=pid)).status == 204

    log = (await api.call("GET", "/v1/audit-events", partner=pid, params={"resource_id": tid})).body["items"]
    assert [e["action"] for e in log] == ["create", "update"]
    create, update = log
    assert create["acting_user_id"] == alice and create["actor_type"] == "service"
    assert create["request_id"] == created.headers["X-Request-Id"] and create["tenant_id"] == tid
    assert create["changes"]["name"] == {"before": None, "after": "Audited"}
    assert update["api_key_id"] == record["id"] and update["actor_type"] == "api_key"
    assert update["changes"] == {"name": {"before": "Audited", "after": "Audited Two"}}
    by_key = (await api.call("GET", "/v1/audit-events", partner=pid,
                             params={"api_key_id": record["id"]})).body["items"]
    assert [e["action"] for e in by_key] == ["update", "create", "reset_password"]
    assert by_key[2]["changes"]["sip_password"] == {"before": "[redacted]", "after": "[redacted]"}
    deleted = (await api.call("GET", "/v1/audit-events", partner=pid,
                              params={"resource": "api_key", "sort": "-created_at"})).body["items"]
    assert [e["action"] for e in deleted] == ["delete", "create"]
    assert "secret_hash" not in str(deleted) and key not in str(deleted)


async def test_audit_pages_with_a_cursor_and_filters_by_time(api: Api) -> None:
    pid = await api.partner()
    for i in range(12):
        await api.tenant(pid, f"Paged {i}")
    page1 = await api.call("GET", "/v1/audit-events", partner=pid, params={"limit": "10", "resource": "tenant"})
    page2 = await api.call("GET", "/v1/audit-events", partner=pid,
                           params={"limit": "10", "resource": "tenant", "cursor": page1.body["next_cursor"]})
    assert len(page1.body["items"]) == 10 and len(page2.body["items"]) == 2 and page2.body["next_cursor"] is None
    bad = await api.call("GET", "/v1/audit-events", partner=pid, params={"created_from": "yesterday"})
    assert bad.status == 422 and bad.body["field"] == "created_from"


async def test_generic_entry_for_a_mutation_its_service_does_not_audit(api: Api) -> None:
    pid = await api.partner()
    made = await api.call("POST", "/v1/webhook-endpoints", partner=pid,
                          json={"url": "https://93.184.216.34/hook", "event_types": ["*"]})
    assert made.status == 201, made.body
    log = (await api.call("GET", "/v1/audit-events", partner=pid,
                          params={"resource": "webhook-endpoints"})).body["items"]
    assert [e["action"] for e in log] == ["createWebhookEndpoint"]


async def test_sorted_lists_and_csv_exports(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    ids = [await api.tenant(pid, f"Sorted {i}") for i in range(3)]
    newest = await api.call("GET", "/v1/tenants", partner=pid, params={"sort": "-created_at", "limit": "10"})
    assert [t["id"] for t in newest.body["items"]] == ids[::-1]
    await api.call("PATCH", f"/v1/tenants/{ids[0]}", partner=pid, json={"name": "Touched"})
    touched = await api.call("GET", "/v1/tenants", partner=pid, params={"sort": "-updated_at", "limit": "10"})
    assert touched.body["items"][0]["id"] == ids[0]
    first = await api.call("GET", "/v1/tenants", partner=pid, params={"sort": "-created_at", "limit": "10"})
    mixed = await api.call("GET", "/v1/tenants", partner=pid, params={"cursor": "x" + "A" * 20})
    assert mixed.status == 422 and mixed.body["field"] == "cursor" and first.status == 200
    assert (await api.call("GET", "/v1/tenants", partner=pid, params={"sort": "name"})).body["field"] == "sort"
    export = await api.call("GET", "/v1/tenants/export", partner=pid, params={"sort": "-created_at"})
    assert export.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [r["id"] for r in rows] == ids[::-1] and rows[-1]["name"] == "Touched"
    did = await buy_did(pool, pid, "+15552002001")
    assert (await api.call("PATCH", f"/v1/dids/{did}", partner=pid, json={"cnam": "ACME"})).status == 200
    dids = list(csv.DictReader(io.StringIO((await api.call("GET", "/v1/dids/export", partner=pid)).text)))
    assert [(d["number"], d["cnam"]) for d in dids] == [("+15552002001", "ACME")]
