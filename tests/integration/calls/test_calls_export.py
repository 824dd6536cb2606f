"""The calls CSV export: formula-safe cells, its own bounded budget and a deadline (real PostgreSQL).

Slow clients are raw sockets with a tiny receive buffer that never read: the export
fills the kernel buffers, then waits on them, holding its database connection.
"""

from __future__ import annotations

import asyncio
import csv
import io
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cdr_ingest.callflow import CallSummary, Finished
from controlplane.calls.plugin import PLUGIN as CALLS
from controlplane.calls.plugin import recorder_key
from controlplane.config import Config, HttpConfig
from controlplane.events.plugin import PLUGIN as EVENTS
from controlplane.http.app import make_app
from controlplane.http.exports import export_budget
from controlplane.plugins import Context
from controlplane.tenants.plugin import PLUGIN as TENANTS

TOKEN = "export-token"
BASE = datetime(2026, 3, 1, 12, tzinfo=UTC)
SLOTS, SECONDS = 2, 5.0
ROWS = 60_000  # ~15 MB of CSV: more than the kernel buffers of a connection hold


@pytest.fixture(scope="module")
async def small_pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def client(small_pool: asyncpg.Pool) -> AsyncIterator[TestClient]:
    config = Config(http=HttpConfig(export_slots=SLOTS, export_seconds=SECONDS))
    app = make_app(service_token_value=TOKEN, probes=[], plugins=[TENANTS, EVENTS, CALLS],
                   context=Context(config=config, pool=small_pool))
    test_client = TestClient(TestServer(app, host="127.0.0.1"))
    await test_client.start_server()
    yield test_client
    await test_client.close()


def auth(pid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": pid}


async def partner_and_tenant(client: TestClient) -> tuple[str, str]:
    r = await client.post("/v1/partners", json={"name": "Exporter", "tier": "BUSINESS"},
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status == 201, await r.text()
    pid = (await r.json())["id"]
    r = await client.post("/v1/tenants", json={"name": "Acme", "billing_email": "b@x.co"}, headers=auth(pid))
    return pid, (await r.json())["id"]


async def one_call(client: TestClient, tid: str, caller: str, dialed: str, at: datetime) -> None:
    summary = CallSummary(
        call_id=f"{tid}.{at.timestamp():.0f}.{caller}", tenant_id=tid, inbound=True, trunk_used=False,
        dialed=dialed, caller_num=caller, caller_channel="PJSIP/carrier-0001", answered_by="PJSIP/t_101-0002",
        started_at=at, answered_at=at + timedelta(seconds=1), ended_at=at + timedelta(seconds=30),
        dial_status="ANSWER", hangup_cause=16)
    await client.server.app[recorder_key].handle(Finished(summary))


async def test_caller_and_callee_cells_are_never_formulas(client: TestClient, small_pool: asyncpg.Pool) -> None:
    pid, tid = await partner_and_tenant(client)
    await one_call(client, tid, "+15015550100", "+15015550199", BASE)
    hostile = {"caller": '=HYPERLINK("http://evil.example","x")', "callee": "@SUM(A1)"}
    await small_pool.execute("UPDATE call_records SET caller = $2, callee = $3 WHERE tenant_id = $1",
                             tid, hostile["caller"], hostile["callee"])
    await one_call(client, tid, "+15015550101", "+15015550198", BASE + timedelta(minutes=1))
    r = await client.get("/v1/calls/export", params={"tenant_id": tid}, headers=auth(pid))
    assert r.status == 200 and r.headers["X-Request-Id"].startswith("req_")
    rows = list(csv.DictReader(io.StringIO(await r.text())))
    assert [(row["caller"], row["callee"]) for row in rows] == [
        ("'" + hostile["caller"], "'" + hostile["callee"]), ("+15015550101", rows[1]["callee"])]
    assert not rows[1]["callee"].startswith("'")  # a plain number stays a number


async def slow_reader(port: int, path: str, pid: str) -> socket.socket:
    """Sends the request, then never reads (a receive buffer of a few KB)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
               f"X-Partner-Id: {pid}\r\n\r\n")
    await asyncio.get_running_loop().sock_sendall(sock, request.encode())
    return sock


async def test_ten_slow_exports_leave_the_pool_to_the_rest_and_are_cut_at_the_deadline(
        client: TestClient, small_pool: asyncpg.Pool) -> None:
    pid, tid = await partner_and_tenant(client)
    await one_call(client, tid, "+15015550100", "+15015550199", BASE)
    template = await small_pool.fetchrow("SELECT * FROM call_records WHERE tenant_id = $1", tid)
    columns = list(template.keys())
    bulk = [tuple({**dict(template), "id": f"call_{i:024x}", "linkedid": f"bulk.{tid}.{i}",
                   "started_at": BASE - timedelta(seconds=i + 1)}[c] for c in columns) for i in range(ROWS)]
    await small_pool.copy_records_to_table("call_records", records=bulk, columns=columns)
    budget = client.server.app[export_budget]
    path = f"/v1/calls/export?tenant_id={tid}"

    started = time.monotonic()
    slow = [await slow_reader(client.port, path, pid) for _ in range(SLOTS)]
    while budget.running < SLOTS:
        assert time.monotonic() - started < SECONDS, "the slow exports never started"
        await asyncio.sleep(0.02)
    # Eight more exports: refused at once, before any query, with a Retry-After.
    refused = [await client.get("/v1/calls/export", params={"tenant_id": tid}, headers=auth(pid))
               for _ in range(8)]
    assert {r.status for r in refused} == {503}
    assert refused[0].headers["Retry-After"] == "5" and (await refused[0].json())["type"].endswith("exports_busy")
    # The rest of the daemon still gets connections (the pool has 4, the exports hold 2).
    t0 = time.monotonic()
    listed = await client.get("/v1/calls", params={"tenant_id": tid}, headers=auth(pid))
    assert listed.status == 200 and time.monotonic() - t0 < 2.0
    async with small_pool.acquire(timeout=1.0) as conn:
        assert await conn.fetchval("SELECT 1") == 1
    assert budget.running == SLOTS  # still stuck on their clients

    # At the deadline the stuck exports are cut and give their slots and connections back.
    while budget.running:
        assert time.monotonic() - started < SECONDS + 5, "the slow exports were never cut"
        await asyncio.sleep(0.05)
    for sock in slow:
        sock.close()
    async with asyncio.timeout(5):
        while small_pool.get_idle_size() + (small_pool.get_max_size() - small_pool.get_size()) < 4:
            await asyncio.sleep(0.05)
    # A client that reads gets the whole export again (a longer deadline: a loaded CI machine
    # may need more than SECONDS for 15 MB).
    budget.seconds = 60.0
    r = await client.get("/v1/calls/export", params={"tenant_id": tid}, headers=auth(pid))
    assert r.status == 200 and (await r.text()).count("\n") == ROWS + 2
