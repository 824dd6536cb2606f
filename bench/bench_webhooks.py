"""Webhook delivery benchmark: throughput against a bare client, and crash safety under kill -9.

Run: .venv/bin/python bench/bench_webhooks.py   (about a minute; starts its own PostgreSQL)

(a) Throughput. 20,000 events for 500 tenants are emitted, then the real worker
    (``python -m controlplane.webhooks``, its own process) dispatches, signs and
    delivers them to a local aiohttp receiver (another process). Rate = deliveries
    seen by the receiver / time between its first and last. The baseline is a bare
    aiohttp client in this process POSTing the same bodies, same concurrency, to the
    same receiver. Target: >= 1,000 deliveries/s.
(b) Crash safety. 10,000 events; the worker is killed with SIGKILL mid-delivery,
    restarted, and the receiver must have every event id at least once.
    Target: lost = 0 (duplicates are expected: at-least-once).
Exits 1 if a target is missed. Both worker runs use 64 deliveries in flight
(BENCH_CONCURRENCY overrides), a 2 s timeout (so a killed worker's leases expire
after 7 s) and the worker exactly as deployed (``python -m controlplane.webhooks``).
Everything shares the machine: worker, receiver and PostgreSQL compete for its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
from aiohttp import web  # noqa: E402

from controlplane.config import Config, WebhooksConfig  # noqa: E402
from controlplane.db.database import create_database, migrate_dsn  # noqa: E402
from controlplane.db.embedded import EmbeddedPostgres  # noqa: E402
from controlplane.events import emit  # noqa: E402
from controlplane.webhooks.models import EndpointCreate  # noqa: E402
from controlplane.secret_box import SecretBox  # noqa: E402
from controlplane.webhooks.services import EndpointService  # noqa: E402
from controlplane.webhooks.settings import Settings  # noqa: E402

KEY = "bench-webhooks-key"
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "64"))
THROUGHPUT_EVENTS = 20_000
CRASH_EVENTS = 10_000
TENANTS = 500
TARGET_RATE = 1_000.0
ROOT = Path(__file__).resolve().parent.parent


# --- the receiver, in its own process ----------------------------------------------------------

def receiver_main(port_file: str) -> None:
    seen: dict[str, list[tuple[str, float]]] = {}

    async def post(request: web.Request) -> web.Response:
        await request.read()
        seen.setdefault(request.path, []).append((request.headers.get("Webhook-Id", ""), time.monotonic()))
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        hits = seen.get("/" + request.match_info["name"], [])
        first, last = (hits[0][1], hits[-1][1]) if hits else (0.0, 0.0)
        return web.json_response({"total": len(hits), "distinct": len({i for i, _ in hits}),
                                  "span": last - first})

    async def ids(request: web.Request) -> web.Response:
        return web.Response(text="\n".join(i for i, _ in seen.get("/" + request.match_info["name"], [])))

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/stats/{name}", stats)
        app.router.add_get("/ids/{name}", ids)
        app.router.add_post("/{tail:.*}", post)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        Path(port_file).write_text(str(site._server.sockets[0].getsockname()[1]))  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


# --- helpers -----------------------------------------------------------------------------------

def start_worker(dsn: str, data_dir: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CONTROLPLANE_DATABASE__DSN=dsn, CONTROLPLANE_DATA_DIR=data_dir,
               CONTROLPLANE_WEBHOOKS__SECRET_KEY=KEY, CONTROLPLANE_WEBHOOKS__TIMEOUT="2",
               CONTROLPLANE_WEBHOOKS__PER_ENDPOINT_CONCURRENCY=str(CONCURRENCY),
               CONTROLPLANE_WEBHOOKS__MAX_CONCURRENCY=str(CONCURRENCY),
               CONTROLPLANE_LOGGING__LEVEL="warning", CONTROLPLANE_LOGGING__FORMAT="json")
    return subprocess.Popen([sys.executable, "-m", "controlplane.webhooks"], env=env, cwd=ROOT)


async def stats(http: aiohttp.ClientSession, base: str, name: str) -> dict[str, float]:
    async with http.get(f"{base}/stats/{name}") as response:
        return await response.json()  # type: ignore[no-any-return]


async def wait_total(http: aiohttp.ClientSession, base: str, name: str, total: int, timeout: float,
                     distinct: bool = False) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        got = await stats(http, base, name)
        if got["distinct" if distinct else "total"] >= total or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)


async def make_endpoint(pool: asyncpg.Pool, partner: str, url: str) -> None:
    settings = Settings.from_config(Config(webhooks=WebhooksConfig(secret_key=KEY, allow_loopback=True)))
    await EndpointService(pool, settings, SecretBox(KEY)).create(partner, EndpointCreate(url=url, event_types=["*"]))


async def emit_events(pool: asyncpg.Pool, partner: str, count: int) -> list[str]:
    ids: list[str] = []
    async with pool.acquire() as conn:
        for start in range(0, count, 1000):
            async with conn.transaction():
                for i in range(start, min(start + 1000, count)):
                    tenant = f"tnt_{i % TENANTS:04d}"
                    event = await emit(conn, "call.completed", partner_id=partner, tenant_id=tenant, data={
                        "call": {"id": f"call_{i:08d}", "tenant_id": tenant, "direction": "outbound",
                                 "from": "+15550100", "to": "+15550199", "duration_s": i % 600,
                                 "retail_cost_micros": 12_345 + i}})
                    ids.append(event.id)
    return ids


async def bare_client(url: str, bodies: list[bytes]) -> None:
    queue = iter(bodies)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:
        async def runner() -> None:
            for body in queue:
                async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                    await response.read()
        await asyncio.gather(*(runner() for _ in range(CONCURRENCY)))


# --- the two benchmarks ------------------------------------------------------------------------

async def throughput(pool: asyncpg.Pool, dsn: str, base: str, data_dir: str) -> tuple[float, float]:
    await make_endpoint(pool, "p_tput", f"{base}/tput")
    t0 = time.perf_counter()
    await emit_events(pool, "p_tput", THROUGHPUT_EVENTS)
    print(f"(a) emitted {THROUGHPUT_EVENTS} events in {time.perf_counter() - t0:.1f} s")
    async with aiohttp.ClientSession() as http:
        worker = start_worker(dsn, data_dir)
        started = time.perf_counter()
        try:
            got = await wait_total(http, base, "tput", THROUGHPUT_EVENTS, timeout=60)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(10)
        wall = time.perf_counter() - started
        rate = got["total"] / got["span"] if got["span"] else 0.0
        delivered = await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'DELIVERED'")
        print(f"(a) worker: {int(got['total'])} received, {delivered} recorded DELIVERED, "
              f"{rate:,.0f} deliveries/s (receiver span {got['span']:.2f} s; {wall:.1f} s incl. start-up)")
        bodies = [r["body"] for r in await pool.fetch("SELECT body FROM events WHERE partner_id = 'p_tput'")]
        await bare_client(f"{base}/bare", bodies)
        bare = await stats(http, base, "bare")
        bare_rate = bare["total"] / bare["span"]
        print(f"(a) bare aiohttp client, same bodies, same concurrency ({CONCURRENCY}): {bare_rate:,.0f} posts/s")
        print(f"(a) ratio worker/bare: {rate / bare_rate:.2f}")
        return rate, rate / bare_rate


async def crash(pool: asyncpg.Pool, dsn: str, base: str, data_dir: str) -> tuple[int, int]:
    await make_endpoint(pool, "p_crash", f"{base}/crash")
    ids = await emit_events(pool, "p_crash", CRASH_EVENTS)
    async with aiohttp.ClientSession() as http:
        worker = start_worker(dsn, data_dir)
        got = await wait_total(http, base, "crash", CRASH_EVENTS // 3, timeout=60)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        at_kill = await stats(http, base, "crash")
        recorded = await pool.fetchval(
            "SELECT count(*) FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id"
            " WHERE w.partner_id = 'p_crash' AND d.status = 'DELIVERED'")
        leased = await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE lease_until > now()")
        print(f"(b) kill -9 after {int(at_kill['total'])} received ({got['total']:.0f} at the signal), "
              f"{recorded} recorded DELIVERED, {leased} claims left leased")
        worker = start_worker(dsn, data_dir)
        restarted = time.perf_counter()
        try:
            final = await wait_total(http, base, "crash", CRASH_EVENTS, timeout=60, distinct=True)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(10)
        async with http.get(f"{base}/ids/crash") as response:
            received = (await response.text()).split("\n")
    lost = len(set(ids) - set(received))
    duplicates = len(received) - len(set(received))
    print(f"(b) after restart: all distinct ids in {time.perf_counter() - restarted:.1f} s "
          f"(leases expire after timeout 2 s + 5 s)")
    print(f"(b) events={CRASH_EVENTS} received={len(received)} distinct={int(final['distinct'])} "
          f"lost={lost} duplicates={duplicates}")
    return lost, duplicates


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench_webhooks_") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        server.start()
        receiver = None
        try:
            await create_database(server.dsn(), "bench")
            dsn = server.dsn("bench")
            await migrate_dsn(dsn)
            port_file = Path(tmp) / "port"
            receiver = subprocess.Popen([sys.executable, __file__, "--receiver", str(port_file)])
            while not port_file.exists() or not port_file.read_text():
                await asyncio.sleep(0.05)
            base = f"http://127.0.0.1:{port_file.read_text()}"
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
            assert pool is not None
            try:
                rate, ratio = await throughput(pool, dsn, base, tmp)
                lost, _ = await crash(pool, dsn, base, tmp)
            finally:
                await pool.close()
        finally:
            if receiver is not None:
                receiver.kill()
                receiver.wait()
            server.stop()
    failed = []
    if rate < TARGET_RATE:
        failed.append(f"throughput {rate:,.0f}/s < {TARGET_RATE:,.0f}/s")
    if lost:
        failed.append(f"{lost} events lost")
    print("RESULT:", "FAIL " + "; ".join(failed) if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--receiver", metavar="PORT_FILE")
    args = parser.parse_args()
    if args.receiver:
        receiver_main(args.receiver)
    else:
        sys.exit(asyncio.run(main()))
