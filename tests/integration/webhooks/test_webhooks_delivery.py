"""Delivery against real receivers: signatures, failures of every kind, bounds, order, leases, SSRF."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from controlplane.events import emit
from controlplane.webhooks import delivery_store
from controlplane.webhooks.models import EndpointCreate
from controlplane.webhooks.targets import IPAddress
from webhooks_support import (Received, delivery_row, emit_one, endpoint, error_500, eventually, ok,
                              receiver, running_worker, service, set_clock, settings, sleeping)

DOC = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"


def documented_verifier() -> Any:
    """``verify_webhook`` exactly as docs/webhooks.md shows it (the block after the marker)."""
    text = DOC.read_text()
    block = re.search(r"<!-- verify-snippet[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert block, "docs/webhooks.md lost its verification snippet"
    namespace: dict[str, Any] = {}
    exec(compile(block.group(1), str(DOC), "exec"), namespace)  # stdlib only: nothing else is importable
    return namespace["verify_webhook"]


async def test_documented_snippet_verifies_every_delivery_and_rejects_forgeries(wpool: asyncpg.Pool) -> None:
    verify = documented_verifier()
    skew = {"seconds": 0.0}
    secrets: dict[str, str] = {}

    async def verifying(received: Received, n: int) -> web.StreamResponse:
        good = verify(secrets["s"], _ci(received.headers), received.body, now=time.time() + skew["seconds"])
        return web.Response(status=200 if good else 401)

    async with receiver() as rx, running_worker(wpool, settings()):
        ep = await endpoint(wpool, "p_sig", rx.on("/verify", verifying))
        secrets["s"] = ep.secrets.signing_secret
        ids = [await emit_one(wpool, "p_sig", tenant=f"t{i % 3}", i=i, text="é ✓ \"quoted\"") for i in range(20)]
        await eventually(lambda: _statuses(wpool, ep.id, "DELIVERED", 20), message="20 verified deliveries")
        assert {r.event_id for r in rx.at("/verify")} == set(ids)

        original = rx.at("/verify")[0]
        async with aiohttp.ClientSession() as client:
            async def replay(headers: dict[str, str], body: bytes) -> int:
                async with client.post(rx.url("/verify"), data=body, headers=headers) as response:
                    return response.status

            headers = {k: v for k, v in original.headers.items() if k.lower().startswith("webhook-")}
            assert await replay(headers, original.body) == 200  # the genuine request, within the window
            tampered = original.body.replace(b'"i":', b'"i":1')
            assert await replay(headers, tampered) == 401
            forged_time = dict(headers, **{"Webhook-Timestamp": str(int(time.time()) + 5)})
            assert await replay(forged_time, original.body) == 401
            skew["seconds"] = 301  # the same captured request, replayed 5 min later
            assert await replay(headers, original.body) == 401


async def test_failure_kinds_are_recorded_for_the_debugger(wpool: asyncpg.Pool) -> None:
    async with receiver() as rx, running_worker(wpool, settings(timeout=0.3)):
        targets = {
            "timeout": rx.on("/slow", sleeping(2.0)),
            "500": rx.on("/500", error_500),
            "closed": rx.url("/close"),
            "refused": "http://127.0.0.1:9/nothing-listens",
        }
        endpoints = {k: await endpoint(wpool, "p_kinds", url) for k, url in targets.items()}
        event_id = await emit_one(wpool, "p_kinds")
        await eventually(lambda: _statuses(wpool, None, "FAILED", 4, partner="p_kinds"), message="4 failures")
        rows = {k: await delivery_row(wpool, e.id, event_id) for k, e in endpoints.items()}
        assert (rows["timeout"]["response_status"], rows["timeout"]["error"]) == (None, "Timeout")
        assert (rows["500"]["response_status"], bytes(rows["500"]["response_body"])) == (500, b"boom")
        assert rows["closed"]["error"] == "Connection closed"
        assert rows["refused"]["error"].startswith("Connection failed")
        assert all(r["attempts"] == 1 and r["status"] == "FAILED" for r in rows.values())


async def test_long_responses_keep_a_512_byte_excerpt(wpool: asyncpg.Pool) -> None:
    async def chatty(received: Received, n: int) -> web.StreamResponse:
        return web.Response(text="x" * 10_000)

    async with receiver() as rx, running_worker(wpool, settings()):
        ep = await endpoint(wpool, "p_long", rx.on("/chatty", chatty))
        event_id = await emit_one(wpool, "p_long")
        await eventually(lambda: _statuses(wpool, ep.id, "DELIVERED", 1))
        row = await delivery_row(wpool, ep.id, event_id)
        assert len(row["response_body"]) == 512 and row["response_truncated"]
        shown = (await service(wpool, settings()).deliveries("p_long", ep.id))[0]
        assert shown.response_body == "x" * 512 and shown.response_truncated
        # a reply stored whole before the excerpt limit is shown cut as well
        await wpool.execute("UPDATE webhook_deliveries SET response_body = $2, response_truncated = false"
                            " WHERE endpoint_id = $1", ep.id, b"y" * 4096)
        shown = (await service(wpool, settings()).deliveries("p_long", ep.id))[0]
        assert shown.response_body == "y" * 512 and shown.response_truncated


async def test_a_slow_endpoint_is_bounded_and_holds_up_no_other(wpool: asyncpg.Pool) -> None:
    async with receiver() as rx, running_worker(wpool, settings(timeout=5, per_endpoint=2)):
        slow = await endpoint(wpool, "p_bound", rx.on("/slow", sleeping(0.5)), ["call.completed"])
        fast = await endpoint(wpool, "p_bound", rx.on("/fast", ok), ["call.completed"])
        started = time.monotonic()
        async with wpool.acquire() as conn, conn.transaction():
            for i in range(8):
                await emit(conn, "call.completed", partner_id="p_bound", tenant_id=f"t{i}", data={"i": i})
        await eventually(lambda: _statuses(wpool, fast.id, "DELIVERED", 8), message="fast endpoint done")
        fast_done = time.monotonic() - started
        await eventually(lambda: _statuses(wpool, slow.id, "DELIVERED", 8), timeout=10, message="slow done")
        slow_done = time.monotonic() - started
        assert rx.peak["/slow"] == 2  # per_endpoint_concurrency
        assert rx.peak["/fast"] <= 2
        assert slow_done >= 2.0  # 8 requests, 2 at a time, 0.5 s each
        assert fast_done < min(1.5, slow_done / 2)  # not queued behind the slow one


async def test_each_tenants_events_arrive_in_order(wpool: asyncpg.Pool) -> None:
    async def jittery(received: Received, n: int) -> web.StreamResponse:
        await asyncio.sleep((n * 7919 % 13) / 1000)
        return web.Response(text="ok")

    async with receiver() as rx, running_worker(wpool, settings(per_endpoint=8)):
        ep = await endpoint(wpool, "p_order", rx.on("/jitter", jittery))
        expected: dict[str, list[str]] = {}
        for batch in range(5):
            async with wpool.acquire() as conn, conn.transaction():
                for i in range(12):
                    tenant = f"t{i % 4}"
                    event = await emit(conn, "extension.updated", partner_id="p_order", tenant_id=tenant,
                                       data={"batch": batch, "i": i})
                    expected.setdefault(tenant, []).append(event.id)
        await eventually(lambda: _statuses(wpool, ep.id, "DELIVERED", 60), message="60 deliveries")
        for tenant, ids in expected.items():
            got = [r.event_id for r in rx.at("/jitter") if json.loads(r.body)["data"]["i"] % 4 == int(tenant[1:])]
            assert got == ids, tenant
        assert rx.peak["/jitter"] > 1  # tenants went in parallel


async def test_a_failed_head_does_not_block_its_tenant_and_its_retry_comes_later(wpool: asyncpg.Pool) -> None:
    async def first_fails(received: Received, n: int) -> web.StreamResponse:
        return web.Response(status=503 if json.loads(received.body)["data"]["i"] == 0 and n == 1 else 200)

    async with receiver() as rx, running_worker(wpool, settings()) as worker:
        ep = await endpoint(wpool, "p_head", rx.on("/head", first_fails))
        async with wpool.acquire() as conn, conn.transaction():
            ids = [(await emit(conn, "tenant.updated", partner_id="p_head", tenant_id="t", data={"i": i})).id
                   for i in range(3)]
        await eventually(lambda: len(rx.at("/head")) == 3)
        assert [r.event_id for r in rx.at("/head")] == ids  # in order; the first one failed
        # its row is written with its outcome, in the worker's next batch
        await eventually(lambda: _statuses(wpool, ep.id, "FAILED", 1), message="the failure recorded")
        row = await delivery_row(wpool, ep.id, ids[0])
        await set_clock(wpool, worker, row["due_at"] + timedelta(milliseconds=20))
        await eventually(lambda: len(rx.at("/head")) == 4)
        assert rx.at("/head")[3].event_id == ids[0]


async def test_a_crashed_workers_claims_are_retried_after_their_lease(wpool: asyncpg.Pool) -> None:
    async with receiver() as rx:
        ep = await endpoint(wpool, "p_crash", rx.on("/crash", ok))
        event_id = await emit_one(wpool, "p_crash")
        async with running_worker(wpool, settings(timeout=1)) as worker:
            await eventually(lambda: _statuses(wpool, ep.id, "DELIVERED", 1))
        await wpool.execute("UPDATE webhook_endpoints SET enabled = true WHERE id = $1", ep.id)
        # A worker that claims the redelivery and dies before recording anything:
        redelivery = await service(wpool, settings()).redeliver("p_crash", ep.id, (await _any_delivery(wpool, ep.id)))
        async with wpool.acquire() as conn:
            claimed = await delivery_store.claim(conn, owner="wk_dead", offset=timedelta(0), per_endpoint=4,
                                                 limit=10, lease=timedelta(seconds=6))
        assert [c.event_id for c in claimed] == [event_id]
        async with running_worker(wpool, settings(timeout=1)) as worker:
            await asyncio.sleep(0.4)
            assert len(rx.at("/crash")) == 1  # still leased to the dead worker
            real = await wpool.fetchval("SELECT now()")
            await set_clock(wpool, worker, real + timedelta(seconds=7))
            await eventually(lambda: len(rx.at("/crash")) == 2, message="retried after the lease")
            assert rx.at("/crash")[1].event_id == event_id
            await eventually(lambda: wpool.fetchval(
                "SELECT status = 'DELIVERED' FROM webhook_deliveries WHERE id = $1",
                int(redelivery.id.removeprefix("dlv_"))))


async def test_dns_rebinding_is_refused_at_delivery_time(wpool: asyncpg.Pool) -> None:
    """Production mode: the name resolved to a public address at creation, to loopback at delivery."""
    answers: dict[str, list[IPAddress]] = {"rebind.test": [ipaddress.ip_address("93.184.216.34")]}

    async def fake_dns(host: str, port: int) -> list[IPAddress]:
        return answers[host]

    production = settings(production=True)
    created = await service(wpool, production, fake_dns).create(
        "p_rebind", EndpointCreate(url="https://rebind.test/hook", event_types=["*"]))
    answers["rebind.test"] = [ipaddress.ip_address("127.0.0.1")]
    async with running_worker(wpool, production, resolve=fake_dns):
        event_id = await emit_one(wpool, "p_rebind")
        await eventually(lambda: _statuses(wpool, created.id, "FAILED", 1))
        row = await delivery_row(wpool, created.id, event_id)
        assert row["error"] == "Refused: rebind.test resolves to 127.0.0.1, which is loopback"


async def test_deleting_an_endpoint_abandons_what_it_was_owed(wpool: asyncpg.Pool) -> None:
    async with receiver() as rx, running_worker(wpool, settings()):
        ep = await endpoint(wpool, "p_del", rx.on("/gone", error_500))
        event_id = await emit_one(wpool, "p_del")
        await eventually(lambda: _statuses(wpool, ep.id, "FAILED", 1))
        await service(wpool, settings()).delete("p_del", ep.id)
        row = await delivery_row(wpool, ep.id, event_id)
        assert (row["status"], row["error"]) == ("DEAD", "endpoint deleted")


def _ci(headers: dict[str, str]) -> Any:
    from multidict import CIMultiDict
    return CIMultiDict(headers)


async def _statuses(pool: asyncpg.Pool, endpoint_id: str | None, status: str, count: int,
                    partner: str | None = None) -> bool:
    found = await pool.fetchval(
        """SELECT count(*) FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
           WHERE ($1::text IS NULL OR d.endpoint_id = $1) AND ($2::text IS NULL OR w.partner_id = $2)
             AND d.status = $3 AND NOT d.manual""", endpoint_id, partner, status)
    return found == count


async def _any_delivery(pool: asyncpg.Pool, endpoint_id: str) -> str:
    return f"dlv_{await pool.fetchval('SELECT min(id) FROM webhook_deliveries WHERE endpoint_id = $1', endpoint_id)}"


async def test_the_worker_hands_its_connection_back_with_the_pools_settings(database_dsn: str) -> None:
    """The worker's held connection runs without flush waits; the daemon's pool releases
    connections with no reset query, so the worker must take its settings back off itself, or
    the next user (the wallet, the recorder) would commit money without waiting for the WAL."""
    from controlplane.db.database import create_pool

    pool = await create_pool(database_dsn, min_size=1, max_size=3)
    try:
        async with receiver() as rx, running_worker(pool, settings()) as worker:
            ep = await endpoint(pool, "p_session", rx.on("/ok", ok))
            await emit_one(pool, "p_session")
            await eventually(lambda: _statuses(pool, ep.id, "DELIVERED", 1), message="delivered")
            await eventually(lambda: worker._conn is None, message="the worker went idle")
        held = [await pool.acquire(timeout=5) for _ in range(3)]  # every connection of the pool
        try:
            for conn in held:
                assert await conn.fetchval("SHOW synchronous_commit") == "on"
                assert await conn.fetchval("SHOW enable_bitmapscan") == "on"
        finally:
            for conn in held:
                await pool.release(conn)
    finally:
        await pool.close()
