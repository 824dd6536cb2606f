"""The RPC through HTTP: the real application with the events and webhooks plugins."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from controlplane.config import Config, Mode, WebhooksConfig
from controlplane.events.plugin import PLUGIN as EVENTS
from controlplane.events.store import sequence_pending
from controlplane.http.app import make_app
from controlplane.plugins import Context
from controlplane.webhooks.plugin import PLUGIN as WEBHOOKS, worker_key
from controlplane.secret_box import SecretBox
from controlplane.webhooks.signing import signature
from webhooks_support import KEY, emit_one, eventually, ok_after, receiver

TOKEN = "test-token"


class Rpc:
    def __init__(self, client: TestClient, partner: str) -> None:
        self.client = client
        self.partner = partner

    async def call(self, method: str, path: str, body: Any = None, *, partner: str | None = None,
                   auth: bool = True, **params: Any) -> tuple[int, Any]:
        headers = {"X-Partner-Id": partner or self.partner}
        if auth:
            headers["Authorization"] = f"Bearer {TOKEN}"
        async with self.client.request(method, path, json=body, headers=headers, params=params) as response:
            text = await response.text()
            if response.status >= 400:
                assert response.content_type == "application/problem+json", text
            return response.status, json.loads(text) if text else None


@asynccontextmanager
async def rpc(pool: asyncpg.Pool, partner: str, *, mode: Mode = Mode.DEVELOPMENT,
              allow: tuple[str, ...] = (), worker: bool = False, loopback: bool | None = None) -> AsyncIterator[Rpc]:
    # The receivers here listen on 127.0.0.1: development configs allow loopback explicitly.
    allow_loopback = mode is Mode.DEVELOPMENT if loopback is None else loopback
    config = Config(mode=mode, webhooks=WebhooksConfig(secret_key=KEY, allow_targets=list(allow), timeout=0.5,
                                                       allow_loopback=allow_loopback))
    context = Context(config=config, pool=pool)
    app = make_app(service_token_value=TOKEN, probes=[], plugins=[EVENTS, WEBHOOKS], context=context)
    assert [job.__self__ for job in context.background] == [app[worker_key]]  # type: ignore[attr-defined]
    tasks = [asyncio.create_task(job()) for job in context.background] if worker else []
    try:
        async with TestClient(TestServer(app)) as client:
            yield Rpc(client, partner)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pool.execute("UPDATE webhook_endpoints SET enabled = false")


async def test_secret_is_shown_once_and_stored_encrypted(wpool: asyncpg.Pool) -> None:
    async with rpc(wpool, "p_once") as api:
        status, created = await api.call("POST", "/v1/webhook-endpoints", {
            "url": "https://93.184.216.34/in", "event_types": ["tenant.created", "call.completed"],
            "description": "CRM"})
        assert status == 201 and created["secrets"]["signing_secret"].startswith("whsec_")
        assert created["event_types"] == ["tenant.created", "call.completed"] and created["enabled"]
        status, got = await api.call("GET", f"/v1/webhook-endpoints/{created['id']}")
        assert status == 200 and "secrets" not in got
        status, listed = await api.call("GET", "/v1/webhook-endpoints")
        assert [e["id"] for e in listed["items"]] == [created["id"]] and "secrets" not in listed["items"][0]
        sealed = await wpool.fetchval("SELECT secret_enc FROM webhook_endpoints WHERE id = $1", created["id"])
        assert created["secrets"]["signing_secret"].encode() not in sealed
        assert SecretBox(KEY).open(created["id"], sealed) == created["secrets"]["signing_secret"]
        # Other partners do not see it.
        assert (await api.call("GET", f"/v1/webhook-endpoints/{created['id']}", partner="p_other"))[0] == 404
        assert (await api.call("GET", "/v1/webhook-endpoints", partner="p_other"))[1]["items"] == []


async def test_bad_input_is_422_naming_the_field(wpool: asyncpg.Pool) -> None:
    good = {"url": "https://93.184.216.34/in", "event_types": ["*"]}
    cases = [
        ({**good, "url": "ftp://x.example.com"}, "url"),
        ({**good, "url": "http://hooks.example.com/in"}, "url"),
        ({**good, "url": "https://user:pw@hooks.example.com/"}, "url"),
        ({**good, "url": 5}, "url"),
        ({"event_types": ["*"]}, "url"),
        ({**good, "event_types": []}, "event_types"),
        ({**good, "event_types": ["tenant.created", "tenant.exploded"]}, "event_types"),
        ({**good, "event_types": "tenant.created"}, "event_types"),
        ({**good, "event_types": [3]}, "event_types"),
        ({**good, "description": "x" * 501}, "description"),
        ({**good, "enabled": "yes"}, "enabled"),
        ({**good, "colour": "red"}, "colour"),
        ([1, 2], "body"),
    ]
    async with rpc(wpool, "p_422") as api:
        for body, field in cases:
            status, problem = await api.call("POST", "/v1/webhook-endpoints", body)
            assert (status, problem.get("field")) == (422, field), (body, problem)
        status, problem = await api.call("POST", "/v1/webhook-endpoints", good, partner="bad partner!")
        assert (status, problem["field"]) == (422, "X-Partner-Id")
        async with api.client.post("/v1/webhook-endpoints", data=b"{not json",
                                   headers={"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": "p"}) as r:
            assert r.status == 422 and (await r.json())["field"] == "body"
        status, created = await api.call("POST", "/v1/webhook-endpoints", good)
        status, problem = await api.call("PATCH", f"/v1/webhook-endpoints/{created['id']}", {"event_types": ["x"]})
        assert (status, problem["field"]) == (422, "event_types")


async def test_every_route_wants_the_token(wpool: asyncpg.Pool) -> None:
    async with rpc(wpool, "p_401") as api:
        for method, path in [("GET", "/v1/webhook-endpoints"), ("POST", "/v1/webhook-endpoints"),
                             ("POST", "/v1/webhook-endpoints/we_x/rotate-secret"), ("GET", "/v1/events"),
                             ("GET", "/v1/event-types")]:
            assert (await api.call(method, path, {}, auth=False))[0] == 401, path


async def test_production_refuses_http_and_internal_targets(wpool: asyncpg.Pool) -> None:
    refused = ["http://127.0.0.1:8080/x", "http://hooks.example.com/x", "https://127.0.0.1/x",
               "https://localhost/x", "https://169.254.169.254/latest/meta-data", "https://[fd00:ec2::254]/",
               "https://10.1.2.3/x", "https://[::ffff:192.168.0.1]/x", "https://100.64.1.1/x"]
    async with rpc(wpool, "p_prod", mode=Mode.PRODUCTION) as api:
        for url in refused:
            status, problem = await api.call("POST", "/v1/webhook-endpoints", {"url": url, "event_types": ["*"]})
            assert (status, problem["field"]) == (422, "url"), url
        status, problem = await api.call("POST", "/v1/webhook-endpoints",
                                         {"url": "https://169.254.169.254/x", "event_types": ["*"]})
        assert "metadata" in problem["detail"]
        status, _ = await api.call("POST", "/v1/webhook-endpoints",
                                   {"url": "https://93.184.216.34/hook", "event_types": ["*"]})
        assert status == 201
    async with rpc(wpool, "p_prod", mode=Mode.PRODUCTION, allow=("10.0.0.0/8",)) as api:
        status, _ = await api.call("POST", "/v1/webhook-endpoints", {"url": "https://10.1.2.3/x", "event_types": ["*"]})
        assert status == 201
    async with rpc(wpool, "p_dev") as api:
        status, _ = await api.call("POST", "/v1/webhook-endpoints",
                                   {"url": "http://127.0.0.1:8080/x", "event_types": ["*"]})
        assert status == 201


async def test_development_refuses_internal_targets_unless_allowed(wpool: asyncpg.Pool) -> None:
    internal = ["https://10.1.2.3/x", "https://169.254.169.254/latest/meta-data", "https://[::ffff:192.168.0.1]/x",
                "https://100.64.1.1/x", "https://[fd00:ec2::254]/"]
    loopback = ["http://127.0.0.1:8080/x", "http://localhost:8080/x", "https://127.0.0.2/x", "http://[::1]:9/x"]
    async with rpc(wpool, "p_dev_guard", loopback=False) as api:
        for url in internal + loopback:
            status, problem = await api.call("POST", "/v1/webhook-endpoints", {"url": url, "event_types": ["*"]})
            assert (status, problem["field"]) == (422, "url"), url
    async with rpc(wpool, "p_dev_guard") as api:  # allow_loopback: loopback only, nothing else internal
        for url in loopback:
            status, _ = await api.call("POST", "/v1/webhook-endpoints", {"url": url, "event_types": ["*"]})
            assert status == 201, url
        for url in internal:
            status, problem = await api.call("POST", "/v1/webhook-endpoints", {"url": url, "event_types": ["*"]})
            assert (status, problem["field"]) == (422, "url"), url
    async with rpc(wpool, "p_dev_guard", loopback=False, allow=("10.0.0.0/8",)) as api:
        status, _ = await api.call("POST", "/v1/webhook-endpoints", {"url": "https://10.1.2.3/x", "event_types": ["*"]})
        assert status == 201


async def test_update_toggle_delete(wpool: asyncpg.Pool) -> None:
    async with rpc(wpool, "p_crud") as api:
        _, ep = await api.call("POST", "/v1/webhook-endpoints",
                               {"url": "https://93.184.216.34/a", "event_types": ["tenant.created"]})
        path = f"/v1/webhook-endpoints/{ep['id']}"
        status, updated = await api.call("PATCH", path, {"url": "https://93.184.216.34/b",
                                                         "event_types": ["call.completed", "*"]})
        assert status == 200 and updated["url"] == "https://93.184.216.34/b" and updated["event_types"] == ["*"]
        status, off = await api.call("POST", f"{path}/disable")
        assert (status, off["enabled"], off["disabled_reason"]) == (200, False, "manual")
        status, on = await api.call("PATCH", path, {"enabled": True})
        assert (on["enabled"], on["disabled_reason"]) == (True, None)
        assert (await api.call("DELETE", path))[0] == 204
        for method in ("GET", "DELETE"):
            assert (await api.call(method, path))[0] == 404
        assert (await api.call("POST", f"{path}/enable"))[0] == 404
        assert await wpool.fetchval("SELECT deleted_at IS NOT NULL FROM webhook_endpoints WHERE id = $1", ep["id"])


async def test_debugger_redeliver_and_rotation(wpool: asyncpg.Pool) -> None:
    async with receiver() as rx, rpc(wpool, "p_debug", worker=True) as api:
        _, ep = await api.call("POST", "/v1/webhook-endpoints",
                               {"url": rx.on("/dbg", ok_after(1)), "event_types": ["tenant.created"]})
        base = f"/v1/webhook-endpoints/{ep['id']}"
        event_id = await emit_one(wpool, "p_debug", "tenant.created", tenant="t1", tenant_name="ACME")
        await emit_one(wpool, "p_debug", "call.completed")  # not subscribed
        await eventually(lambda: len(rx.at("/dbg")) == 1)

        async def first_row() -> dict[str, Any]:
            _, page = await api.call("GET", f"{base}/deliveries")
            # A first attempt's row is written with its outcome (the worker's lane).
            return page["items"][0] if page["items"] else {}

        await eventually(lambda: _row_is(first_row, status="FAILED"))
        row = await first_row()
        assert (row["event_id"], row["event_type"], row["attempts"], row["max_attempts"]) == (
            event_id, "tenant.created", 1, 8)
        assert row["response_status"] == 500 and row["response_body"] == "request 1" and row["error"] is None
        assert json.loads(row["request_body"])["id"] == event_id
        assert row["last_attempt_at"] is not None and row["next_attempt_at"] is not None

        status, again = await api.call("POST", f"{base}/deliveries/{row['id']}/redeliver")
        assert status == 202 and again["event_id"] == event_id and again["redelivery"] and again["max_attempts"] == 1
        await eventually(lambda: len(rx.at("/dbg")) == 2)
        first, second = rx.at("/dbg")
        assert first.event_id == second.event_id == event_id and first.body == second.body
        status, view = await api.call("GET", f"{base}/deliveries/{again['id']}")
        await eventually(lambda: _row_is(lambda: _get(api, f"{base}/deliveries/{again['id']}"), status="DELIVERED"))

        # Rotation: the next attempt is signed with the new secret, not the old one.
        status, rotated = await api.call("POST", f"{base}/rotate-secret")
        assert status == 200 and rotated["secrets"]["signing_secret"] != ep["secrets"]["signing_secret"]
        await api.call("POST", f"{base}/deliveries/{row['id']}/redeliver")
        await eventually(lambda: len(rx.at("/dbg")) == 3)
        third = rx.at("/dbg")[2]
        stamp = int(third.headers["Webhook-Timestamp"])
        new, old = rotated["secrets"]["signing_secret"], ep["secrets"]["signing_secret"]
        assert third.headers["Webhook-Signature"] == signature(new, stamp, third.body)
        assert third.headers["Webhook-Signature"] != signature(old, stamp, third.body)

        assert (await api.call("POST", f"{base}/deliveries/dlv_999999/redeliver"))[0] == 404
        assert (await api.call("POST", f"{base}/deliveries/nonsense/redeliver"))[0] == 404
        await api.call("POST", f"{base}/disable")
        status, problem = await api.call("POST", f"{base}/deliveries/{row['id']}/redeliver")
        assert status == 409 and problem["type"].endswith("endpoint_disabled")


async def test_event_feed_with_filters_and_a_cursor_stable_under_late_commits(wpool: asyncpg.Pool) -> None:
    partner = "p_feed"
    async with rpc(wpool, partner) as api:
        early = await emit_one(wpool, partner, "tenant.created", tenant="t1")
        await emit_one(wpool, partner, "call.completed", tenant="t2")
        await emit_one(wpool, "p_someone_else", "tenant.created")
        # A transaction that started first but commits last:
        slow = await wpool.acquire()
        tx = slow.transaction()
        await tx.start()
        from controlplane.events import emit
        late = (await emit(slow, "tenant.updated", partner_id=partner, tenant_id="t1", data={})).id
        await emit_one(wpool, partner, "tenant.deleted", tenant="t1")
        await _sequence(wpool)

        status, page = await api.call("GET", "/v1/events")
        assert status == 200 and [e["type"] for e in page["items"]] == [
            "tenant.created", "call.completed", "tenant.deleted"]
        cursor = page["next_cursor"]
        await tx.commit()
        await wpool.release(slow)
        await _sequence(wpool)
        _, after = await api.call("GET", "/v1/events", cursor=cursor)
        assert [e["id"] for e in after["items"]] == [late]  # not lost behind the cursor
        _, empty = await api.call("GET", "/v1/events", cursor=after["next_cursor"])
        assert empty == {"items": [], "next_cursor": after["next_cursor"], "has_more": False}

        _, typed = await api.call("GET", "/v1/events", type="tenant.created,tenant.deleted")
        assert [e["type"] for e in typed["items"]] == ["tenant.created", "tenant.deleted"]
        _, tenant = await api.call("GET", "/v1/events", tenant_id="t2")
        assert [e["type"] for e in tenant["items"]] == ["call.completed"]
        _, paged = await api.call("GET", "/v1/events", limit="2")
        assert len(paged["items"]) == 2 and paged["has_more"]
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert (await api.call("GET", "/v1/events", created_from=future))[1]["items"] == []
        assert len((await api.call("GET", "/v1/events", created_before=future))[1]["items"]) == 4

        for params, field in [({"type": "nope"}, "type"), ({"cursor": "zzz"}, "cursor"), ({"limit": "0"}, "limit"),
                              ({"created_from": "yesterday"}, "created_from"),
                              ({"created_before": "2026-01-01T00:00:00"}, "created_before")]:
            status, problem = await api.call("GET", "/v1/events", **params)
            assert (status, problem["field"]) == (422, field), params

        status, one = await api.call("GET", f"/v1/events/{early}")
        assert status == 200 and one["id"] == early and one["partner_id"] == partner
        assert (await api.call("GET", f"/v1/events/{early}", partner="p_someone_else"))[0] == 404
        _, types = await api.call("GET", "/v1/event-types")
        assert {"name": "webhooks", "types": ["webhook_endpoint.disabled"]} in types["items"]


async def _sequence(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await sequence_pending(conn, 1000)


async def _get(api: Rpc, path: str) -> dict[str, Any]:
    return (await api.call("GET", path))[1]


async def _row_is(fetch: Any, **expected: Any) -> bool:
    row = await fetch()
    return all(row.get(k) == v for k, v in expected.items())
