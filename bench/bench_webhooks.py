"""Webhook delivery benchmark: throughput against a bare client, and crash safety under kill -9.

Run: .venv/bin/python bench/bench_webhooks.py   (about a minute; starts its own PostgreSQL)

(a) Throughput. 20,000 events for 500 tenants are emitted, then the real worker
    (``python -m controlplane.webhooks``, its own process) dispatches, signs and
    delivers them to a local aiohttp receiver (another process). Rate = deliveries
    seen by the receiver / time between its first and last. The baseline is a bare
    aiohttp client in this process POSTing the same bodies, same concurrency, to the
    same receiver. Targets: >= 1,000 deliveries/s and >= 0.60 of the bare client's rate
    (issue 18), every event received by the deadline.
(b) Crash safety. 10,000 events; the worker is killed with SIGKILL mid-delivery,
    restarted, and the receiver must have every event id at least once.
    Target: lost = 0 (duplicates are expected: at-least-once).
The receiver checks every delivery's signature (HMAC over timestamp + body, the endpoint's
secret) and counts the bad ones: target 0. A wait that reaches its deadline with deliveries
missing fails the run (it never returns as if all had arrived).
CPU per delivery is printed for the worker, PostgreSQL (postmaster and backends) and the
receiver, over the worker's whole life and from its first delivery on, beside the bare
client's and the receiver's per post: on two shared cores the ratio follows these sums.
Exits 1 if a target is missed (bench/verdict.py). Both worker runs use 64 deliveries in flight
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

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
from aiohttp import web  # noqa: E402
from verdict import Verdicts  # noqa: E402
from cpu import CpuMeter, cpu_ms, postmaster_pid  # noqa: E402
from controlplane import eventloop  # noqa: E402

from controlplane.config import Config, WebhooksConfig  # noqa: E402
from controlplane.db.database import create_database, migrate_dsn  # noqa: E402
from controlplane.db.embedded import EmbeddedPostgres  # noqa: E402
from controlplane.events import emit  # noqa: E402
from controlplane.webhooks.models import EndpointCreate  # noqa: E402
from controlplane.secret_box import SecretBox  # noqa: E402
from controlplane.webhooks.services import EndpointService  # noqa: E402
from controlplane.webhooks.settings import Settings  # noqa: E402
from controlplane.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature  # noqa: E402

KEY = "bench-webhooks-key"
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "64"))
THROUGHPUT_EVENTS = 20_000
CRASH_EVENTS = 10_000
TENANTS = 500
TARGET_RATE = 1_000.0
TARGET_RATIO = 0.60
DEADLINE_S = 60.0
ROOT = Path(__file__).resolve().parent.parent
# Set to a file name to sample the worker of part (a) with py-spy (collapsed stacks, one per
# line with its count). The figures of such a run are not comparable: py-spy takes CPU too.
PROFILE = os.environ.get("BENCH_WORKER_PROFILE")


# --- the receiver, in its own process ----------------------------------------------------------

def receiver_main(port_file: str) -> None:
    seen: dict[str, list[tuple[str, float]]] = {}
    secrets: dict[str, str] = {}  # path -> the endpoint's signing secret (registered by the bench)
    bad: dict[str, int] = {}
    verified: dict[str, int] = {}

    async def post(request: web.Request) -> web.Response:
        body = await request.read()
        secret = secrets.get(request.path)
        if secret is not None:  # the bare client's posts are not signed
            stamp = request.headers.get(TIMESTAMP_HEADER, "")
            if not stamp.isdigit() or request.headers.get(SIGNATURE_HEADER) != signature(secret, int(stamp), body):
                bad[request.path] = bad.get(request.path, 0) + 1
                return web.Response(status=400, text="bad signature")
            verified[request.path] = verified.get(request.path, 0) + 1
        seen.setdefault(request.path, []).append((request.headers.get("Webhook-Id", ""), time.monotonic()))
        return web.Response(text="ok")

    async def register(request: web.Request) -> web.Response:
        secrets["/" + request.match_info["name"]] = (await request.read()).decode()
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        path = "/" + request.match_info["name"]
        hits = seen.get(path, [])
        first, last = (hits[0][1], hits[-1][1]) if hits else (0.0, 0.0)
        return web.json_response({"total": len(hits), "distinct": len({i for i, _ in hits}),
                                  "span": last - first, "bad_signatures": bad.get(path, 0),
                                  "verified": verified.get(path, 0)})

    async def ids(request: web.Request) -> web.Response:
        return web.Response(text="\n".join(i for i, _ in seen.get("/" + request.match_info["name"], [])))

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/stats/{name}", stats)
        app.router.add_get("/ids/{name}", ids)
        app.router.add_put("/secret/{name}", register)
        app.router.add_post("/{tail:.*}", post)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        Path(port_file).write_text(str(site._server.sockets[0].getsockname()[1]))  # type: ignore[union-attr]
        await asyncio.Event().wait()

    eventloop.run(main())  # the worker's loop (uvloop when installed)


# --- helpers -----------------------------------------------------------------------------------

def start_worker(dsn: str, data_dir: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CONTROLPLANE_DATABASE__DSN=dsn, CONTROLPLANE_DATA_DIR=data_dir,
               CONTROLPLANE_WEBHOOKS__SECRET_KEY=KEY, CONTROLPLANE_WEBHOOKS__TIMEOUT="2",
               CONTROLPLANE_WEBHOOKS__PER_ENDPOINT_CONCURRENCY=str(CONCURRENCY),
               CONTROLPLANE_WEBHOOKS__MAX_CONCURRENCY=str(CONCURRENCY),
               # The receiver is on loopback, which the SSRF guard refuses unless allowed (development).
               CONTROLPLANE_WEBHOOKS__ALLOW_LOOPBACK="true",
               CONTROLPLANE_LOGGING__LEVEL="warning", CONTROLPLANE_LOGGING__FORMAT="json")
    return subprocess.Popen([sys.executable, "-m", "controlplane.webhooks"], env=env, cwd=ROOT)


def start_profiler(pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy sampling ``pid`` into PROFILE (raw collapsed stacks), when asked for."""
    if not PROFILE:
        return None
    return subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "--rate", "200",
                             "--format", "raw", "-o", PROFILE, "--pid", str(pid)], stdout=subprocess.DEVNULL)


async def stats(http: aiohttp.ClientSession, base: str, name: str) -> dict[str, float]:
    async with http.get(f"{base}/stats/{name}") as response:
        return await response.json()  # type: ignore[no-any-return]


class Missing(Exception):
    """The deadline passed with deliveries still missing."""

    def __init__(self, got: dict[str, float], wanted: int, what: str) -> None:
        super().__init__(f"{what}: {int(got[what])} of {wanted} received by the deadline")
        self.got = got


async def wait_total(http: aiohttp.ClientSession, base: str, name: str, total: int, timeout: float,
                     distinct: bool = False) -> dict[str, float]:
    """The receiver's stats once ``total`` arrived; ``Missing`` when the deadline comes first."""
    what = "distinct" if distinct else "total"
    deadline = time.monotonic() + timeout
    while True:
        got = await stats(http, base, name)
        if got[what] >= total:
            return got
        if time.monotonic() > deadline:
            raise Missing(got, total, what)
        await asyncio.sleep(0.05)


async def make_endpoint(pool: asyncpg.Pool, http: aiohttp.ClientSession, base: str, name: str,
                        partner: str) -> str:
    """The endpoint of ``partner`` at the receiver's ``/name`` (which verifies its signatures); its secret."""
    settings = Settings.from_config(Config(webhooks=WebhooksConfig(secret_key=KEY, allow_loopback=True)))
    created = await EndpointService(pool, settings, SecretBox(KEY)).create(
        partner, EndpointCreate(url=f"{base}/{name}", event_types=["*"]))
    async with http.put(f"{base}/secret/{name}", data=created.secrets.signing_secret.encode()) as response:
        assert response.status == 200
    return created.secrets.signing_secret


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


FLOOR_TABLE = """CREATE TABLE bench_floor_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, endpoint_id text NOT NULL, event_seq bigint NOT NULL,
    attempted_at timestamptz NOT NULL, response_status integer, response_body bytea)"""


async def floor_client(pool: asyncpg.Pool, url: str, secret: str, events: list[asyncpg.Record]) -> None:
    """The least any delivery that leaves a record can do: each post signed, and one row written
    per delivery (batched as the worker's pump batches, without the flush wait, an index to list
    an endpoint's deliveries). No queue, claim, lease, ordering or retry schedule."""
    pending: list[tuple[int, float, int, bytes]] = []
    queue = iter(events)
    sending = CONCURRENCY

    async def write() -> None:  # on ``conn``, acquired below
        while sending or pending:
            if len(pending) < 16:
                await asyncio.sleep(0.002)
            batch, pending[:] = pending[:500], pending[500:]
            if batch:
                await conn.execute(
                    "INSERT INTO bench_floor_log (endpoint_id, event_seq, attempted_at, response_status, response_body)"
                    " SELECT 'floor', s, to_timestamp(t), c, b"
                    " FROM unnest($1::bigint[], $2::float8[], $3::int[], $4::bytea[]) AS r(s, t, c, b)",
                    [r[0] for r in batch], [r[1] for r in batch], [r[2] for r in batch], [r[3] for r in batch])

    async with pool.acquire() as conn, aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:
        await conn.execute(FLOOR_TABLE)
        await conn.execute("CREATE INDEX ON bench_floor_log (endpoint_id, id DESC)")
        await conn.execute("SET synchronous_commit TO off")

        async def runner() -> None:
            nonlocal sending
            for event in queue:
                body, stamp = event["body"], int(time.time())
                headers = {"Content-Type": "application/json", "Webhook-Id": event["id"],
                           TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: signature(secret, stamp, body)}
                async with http.post(url, data=body, headers=headers) as response:
                    pending.append((event["seq"], time.time(), response.status, await response.read()))
            sending -= 1
        await asyncio.gather(write(), *(runner() for _ in range(CONCURRENCY)))
        await conn.execute("RESET synchronous_commit")


# --- the two benchmarks ------------------------------------------------------------------------

async def throughput(pool: asyncpg.Pool, dsn: str, base: str, data_dir: str, verdicts: Verdicts,
                     processes: dict[str, int]) -> None:
    async with aiohttp.ClientSession() as http:
        await make_endpoint(pool, http, base, "tput", "p_tput")
        t0 = time.perf_counter()
        await emit_events(pool, "p_tput", THROUGHPUT_EVENTS)
        print(f"(a) emitted {THROUGHPUT_EVENTS} events in {time.perf_counter() - t0:.1f} s")
        worker = start_worker(dsn, data_dir)
        profiler = start_profiler(worker.pid)
        started = time.perf_counter()
        # Whole life (start-up included) and steady state (from the first delivery seen): the
        # worker, PostgreSQL (postmaster and every backend) and the receiver.
        whole = CpuMeter({"worker": worker.pid, "receiver": processes["receiver"]},
                         {"PostgreSQL": processes["postgres"]})
        steady = CpuMeter(dict(whole.pids), dict(whole.trees))
        whole.start()
        steady_started = False
        first = {"total": 0.0}
        try:
            first = await wait_total(http, base, "tput", 1, timeout=DEADLINE_S)
            steady.start()
            steady_started = True
            got = await wait_total(http, base, "tput", THROUGHPUT_EVENTS, timeout=DEADLINE_S)
            verdicts.exactly(f"(a) events not received within {DEADLINE_S:.0f} s", 0, 0)
        except Missing as exc:
            got = exc.got
            verdicts.exactly(f"(a) events not received within {DEADLINE_S:.0f} s",
                             THROUGHPUT_EVENTS - got["total"], 0)
        finally:
            worker_cpu = cpu_ms(worker.pid)  # its whole life: start-up (imports, pool) included
            whole.stop()  # before the worker's backends exit with its pool (they take their ticks)
            if steady_started:
                steady.stop()
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                profiler.wait(30)
            worker.send_signal(signal.SIGTERM)
            worker.wait(10)
        wall = time.perf_counter() - started
        rate = got["total"] / got["span"] if got["span"] else 0.0
        delivered = await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'DELIVERED'")
        print(f"(a) worker: {int(got['total'])} received, {delivered} recorded DELIVERED, "
              f"{rate:,.0f} deliveries/s (receiver span {got['span']:.2f} s; {wall:.1f} s incl. start-up)")
        bodies = [r["body"] for r in await pool.fetch("SELECT body FROM events WHERE partner_id = 'p_tput'")]
        bare_meter = CpuMeter({"receiver": processes["receiver"]}, {"PostgreSQL": processes["postgres"]})
        bare_meter.start()
        bare_cpu = cpu_ms(os.getpid())
        await bare_client(f"{base}/bare", bodies)
        bare_cpu = cpu_ms(os.getpid()) - bare_cpu
        bare_meter.stop()
        bare = await stats(http, base, "bare")
        bare_rate = bare["total"] / bare["span"]
        print(f"(a) bare aiohttp client, same bodies, same concurrency ({CONCURRENCY}): {bare_rate:,.0f} posts/s")
        print(f"(a) ratio worker/bare: {rate / bare_rate:.2f}")
        print(f"(a) CPU per delivery: worker {worker_cpu / max(got['total'], 1):.3f} ms (its start-up included),"
              f" bare client {bare_cpu / max(bare['total'], 1):.3f} ms")
        after_first = got["total"] - first["total"]
        print(f"(a) CPU per delivery, whole run: {whole.line(got['total'])}")
        print(f"(a) CPU per delivery, from the first delivery on: {steady.line(after_first)}")
        print(f"(a) CPU per bare post: client {bare_cpu / max(bare['total'], 1):.2f} ms/call, "
              f"{bare_meter.line(bare['total'])}")
        busy = steady.spent.get("worker", 0.0) / 1000 / max(got["span"], 1e-9)
        print(f"(a) worker busy {busy:.0%} of one core from the first delivery on (under 100%: it also"
              " waits, on round trips or for the cores)")
        total_ms = sum(steady.per_call(after_first).values())
        bare_total_ms = bare_cpu / max(bare["total"], 1) + sum(bare_meter.per_call(bare["total"]).values())
        print(f"(a) all CPU per delivery (worker + PostgreSQL + receiver): {total_ms:.3f} ms; "
              f"per bare post (client + receiver + PostgreSQL): {bare_total_ms:.3f} ms")
        floor_secret = await make_endpoint(pool, http, base, "floor", "p_floor")
        floor_meter = CpuMeter({"receiver": processes["receiver"]}, {"PostgreSQL": processes["postgres"]})
        floor_meter.start()
        floor_cpu = cpu_ms(os.getpid())
        await floor_client(pool, f"{base}/floor", floor_secret,
                           await pool.fetch("SELECT seq, id, body FROM events WHERE partner_id = 'p_tput'"))
        floor_cpu = cpu_ms(os.getpid()) - floor_cpu
        floor_meter.stop()
        floor = await stats(http, base, "floor")
        floor_rate = floor["total"] / floor["span"]
        logged = await pool.fetchval("SELECT count(*) FROM bench_floor_log")
        print(f"(a) the floor of a recorded delivery (signed post + one row each, batched): {floor_rate:,.0f}"
              f" posts/s, {logged} rows; / bare: {floor_rate / bare_rate:.2f} (a recorded delivery made with"
              f" aiohttp's client: the worker's own client is leaner, docs/performance.md)")
        print(f"(a) CPU per floor delivery: client {floor_cpu / max(floor['total'], 1):.3f} ms, "
              f"{floor_meter.line(floor['total'])}")
        verdicts.info("(a) floor (signed post + one row per delivery) / bare client", floor_rate / bare_rate)
        verdicts.exactly("(a) floor deliveries with a bad signature", floor["bad_signatures"], 0)
        verdicts.info("(a) worker CPU per delivery (start-up included)", worker_cpu / max(got["total"], 1), "ms")
        verdicts.info("(a) PostgreSQL CPU per delivery", whole.per_call(got["total"]).get("PostgreSQL", 0.0), "ms")
        verdicts.info("(a) worker + PostgreSQL + receiver CPU per delivery (steady)", total_ms, "ms")
        verdicts.info("(a) bare client CPU per post", bare_cpu / max(bare["total"], 1), "ms")
        verdicts.at_least("(a) worker deliveries/s", rate, TARGET_RATE, "/s")
        verdicts.info("(a) bare aiohttp client posts/s", bare_rate, "/s")
        verdicts.at_least("(a) worker / bare client", rate / bare_rate, TARGET_RATIO)
        verdicts.exactly("(a) deliveries with a bad signature", got["bad_signatures"], 0)
        verdicts.exactly("(a) deliveries received without their signature checked", got["total"] - got["verified"], 0)


async def crash(pool: asyncpg.Pool, dsn: str, base: str, data_dir: str, verdicts: Verdicts) -> None:
    async with aiohttp.ClientSession() as http:
        await make_endpoint(pool, http, base, "crash", "p_crash")
        ids = await emit_events(pool, "p_crash", CRASH_EVENTS)
        worker = start_worker(dsn, data_dir)
        try:
            got = await wait_total(http, base, "crash", CRASH_EVENTS // 3, timeout=DEADLINE_S)
        except Missing as exc:  # killed later than planned: the crash is still a crash
            got = exc.got
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
            final = await wait_total(http, base, "crash", CRASH_EVENTS, timeout=DEADLINE_S, distinct=True)
        except Missing as exc:
            final = exc.got
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
    verdicts.exactly(f"(b) events lost after kill -9 (all must arrive within {DEADLINE_S:.0f} s of the restart)",
                     lost, 0)
    verdicts.info("(b) duplicates (at-least-once)", duplicates)
    verdicts.exactly("(b) deliveries with a bad signature", final["bad_signatures"], 0)
    verdicts.exactly("(b) deliveries received without their signature checked", final["total"] - final["verified"], 0)


async def main() -> int:
    verdicts = Verdicts("bench_webhooks")
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
                await throughput(pool, dsn, base, tmp, verdicts,
                                 {"receiver": receiver.pid, "postgres": postmaster_pid(str(server.pgdata))})
                await crash(pool, dsn, base, tmp, verdicts)
            finally:
                await pool.close()
        finally:
            if receiver is not None:
                receiver.kill()
                receiver.wait()
            server.stop()
    return verdicts.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--receiver", metavar="PORT_FILE")
    args = parser.parse_args()
    if args.receiver:
        receiver_main(args.receiver)
    else:
        # The bare client runs on the loop the worker runs on (uvloop when installed): the
        # ratio is the worker's own work per delivery, not a difference of event loops.
        sys.exit(eventloop.run(main()))
