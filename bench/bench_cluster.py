"""Daemons sharing one database (issue 19, docs/scale.md): what the shared parts cost.

Run: .venv/bin/python bench/bench_cluster.py [--requests 2000]
An embedded PostgreSQL, two pools (two daemons). Figures:
- the shared API rate limit (``SharedRateLimiter.acquire``: one statement) per request, one at a
  time, against the in-process limiter of the same run (the baseline); and its throughput with
  16 requests in flight over both daemons, for one partner (its bucket row is the hot spot) and
  for 16 partners;
- a node command (``controlplane.db.node_bus``): sent by daemon B, run by node A's daemon;
- a lease takeover: the holder's connections vanish (kill -9), the other daemon runs the job;
- an outbound admission with the partner's wallet shared across nodes
  (``limits.shared_wallet``: a lock transaction) against the engine alone (the baseline).
Targets: shared limiter p50 <= 1 ms one at a time (p99 <= 25 ms: on a machine shared with
other work, p99 is the scheduler's), >= 1,000 requests/s for one partner (its
whole minute's default limit in under a second); node command p99 <= 500 ms (the issue's bound
is 2 s end to end); takeover <= TTL + TTL/3 + 0.5 s; shared-wallet admission p50 <= 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import asyncpg  # noqa: E402
from verdict import Verdicts  # noqa: E402

from controlplane.db.database import create_database, create_pool, migrate_dsn  # noqa: E402
from controlplane.db.embedded import EmbeddedPostgres  # noqa: E402
from controlplane.db.lease import Holder, run_under  # noqa: E402
from controlplane.db.node_bus import NodeBus, send  # noqa: E402
from controlplane.account import store as account_store  # noqa: E402
from controlplane.calls.recorder import CallRecorder  # noqa: E402
from controlplane.http.ratelimit import RateLimiter  # noqa: E402
from controlplane.limits.engine import Engine  # noqa: E402
from controlplane.limits.shared_wallet import SharedWallet  # noqa: E402
from controlplane.profiles.models import AssignmentBody  # noqa: E402
from controlplane.profiles.services import ProfileServices  # noqa: E402
from controlplane.tenants.applier import Applier  # noqa: E402
from controlplane.tenants.models import PartnerCreate, PartnerTier, TenantCreate  # noqa: E402
from controlplane.tenants.services import TenantServices  # noqa: E402
from controlplane.wallet import store as wallet_store  # noqa: E402
from controlplane.wallet.models import Entry, EntryKind  # noqa: E402
from provisioning.model import PartnerStatus  # noqa: E402
from controlplane.http.shared_ratelimit import SharedRateLimiter  # noqa: E402

VERDICTS = Verdicts("bench_cluster")
TTL = 2.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def rate_limits(pools: list[asyncpg.Pool], requests: int) -> None:
    shared = [SharedRateLimiter(partner_limit=10**9, pool=p) for p in pools]
    local = RateLimiter(partner_limit=10**9)
    for i in range(50):  # warm both pools' prepared statements
        await shared[i % 2].acquire("warm", 10**9, "warm")
    seq: list[float] = []
    for i in range(requests):
        t = time.perf_counter()
        await shared[i % 2].acquire(f"k{i % 50}", 10**9, "p-seq")
        seq.append((time.perf_counter() - t) * 1000)
    base: list[float] = []
    for i in range(requests):
        t = time.perf_counter()
        await local.acquire(f"k{i % 50}", 10**9, "p-seq")
        base.append((time.perf_counter() - t) * 1000)
    VERDICTS.info("in-process limiter per request p50 (baseline)", statistics.median(base) * 1000, "us")
    VERDICTS.at_most("shared limiter per request p50", statistics.median(seq), 1.0, "ms")
    VERDICTS.at_most("shared limiter per request p99 (a loaded machine's scheduling)", pct(seq, 0.99), 25.0, "ms")
    VERDICTS.info("shared / in-process p50", statistics.median(seq) / max(statistics.median(base), 1e-9))
    for label, partners in (("one partner", 1), ("16 partners", 16)):
        async def worker(w: int) -> None:
            for i in range(requests // 16):
                await shared[w % 2].acquire(f"k{w}-{i % 10}", 10**9, f"p-par-{w % partners}")
        t = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(16)))
        rate = (requests // 16) * 16 / (time.perf_counter() - t)
        if partners == 1:
            VERDICTS.at_least(f"shared limiter, 16 in flight, {label}", rate, 1000, "req/s")
        else:
            VERDICTS.info(f"shared limiter, 16 in flight, {label}", rate, "req/s")


async def node_commands(pools: list[asyncpg.Pool], count: int) -> None:
    sent_at: dict[int, float] = {}
    lags: list[float] = []
    done = asyncio.Event()

    async def ran(body: object) -> None:
        assert isinstance(body, dict)
        lags.append((time.perf_counter() - sent_at[int(body["n"])]) * 1000)
        if len(lags) == count:
            done.set()

    bus = NodeBus(pools[0], "bench-a")
    bus.on("ping", ran)
    task = asyncio.create_task(bus.run())
    await asyncio.sleep(0.5)
    try:
        for n in range(count):
            sent_at[n] = time.perf_counter()
            await send(pools[1], "bench-a", "ping", {"n": n})
            await asyncio.sleep(0.01)
        await asyncio.wait_for(done.wait(), 30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    VERDICTS.info("node command, sent by B -> run on A, p50", statistics.median(lags), "ms")
    VERDICTS.at_most("node command, sent by B -> run on A, p99", pct(lags, 0.99), 500, "ms")


async def takeover(dsn: str) -> None:
    pool_a = await create_pool(dsn, 1, 2)
    pool_b = await create_pool(dsn, 1, 2)
    ran: dict[str, float] = {}

    def job(who: str):  # type: ignore[no-untyped-def]
        async def run() -> None:
            ran.setdefault(who, time.perf_counter())
            await asyncio.Event().wait()
        return run

    a = asyncio.create_task(run_under(Holder(pool_a, "a", "bench-a", TTL), "bench.job", job("a")))
    await asyncio.sleep(0.3)
    b = asyncio.create_task(run_under(Holder(pool_b, "b", "bench-b", TTL), "bench.job", job("b")))
    await asyncio.sleep(TTL)
    pool_a.terminate()
    killed = time.perf_counter()
    a.cancel()
    await asyncio.gather(a, return_exceptions=True)
    while "b" not in ran and time.perf_counter() - killed < 3 * TTL:
        await asyncio.sleep(0.02)
    b.cancel()
    await asyncio.gather(b, return_exceptions=True)
    await pool_b.close()
    if "b" not in ran:
        VERDICTS.broken("lease takeover after kill", "the other daemon never ran the job")
        return
    VERDICTS.at_most(f"lease takeover after kill (TTL {TTL:g} s)", ran["b"] - killed, TTL + TTL / 3 + 0.5, "s")


async def admissions(dsn: str, count: int) -> None:
    pool = await create_pool(dsn, 2, 8, node_id="bench-a")
    try:
        tenants = TenantServices(pool, Applier(pool))
        partner = (await tenants.create_partner(PartnerCreate(name="bench", tier=PartnerTier.BUSINESS))).id
        tenant = (await tenants.create_tenant(partner, TenantCreate(name="bench", billing_email="a@b.co",
                                                                    sip_prefix="bench"))).id
        await ProfileServices(pool).assign(partner, tenant, AssignmentBody(per_minute_micros=50_000))
        async with pool.acquire() as conn, conn.transaction():
            await account_store.set_status(conn, partner, PartnerStatus.ACTIVE,
                                           activated_at=datetime(2000, 1, 1, tzinfo=UTC))
            await wallet_store.post(conn, Entry(partner, EntryKind.MANUAL_ADJUSTMENT, 10**12, "adjust:bench"))
        engine = Engine(pool, CallRecorder(pool).billing)
        await engine.load_all()
        shared = SharedWallet(pool, engine, "bench-a")
        figures: dict[str, list[float]] = {"alone": [], "shared": []}
        for i in range(count):
            for name, admit in (("alone", engine.admit), ("shared", shared.admit)):
                t = time.perf_counter()
                decision = await admit(tenant, "+15015550100", f"{name}-{i}", "PJSIP/x", False)
                figures[name].append((time.perf_counter() - t) * 1000)
                assert decision.admit, decision
                state = engine.tenants[tenant]
                engine.release(state, f"{name}-{i}")
        VERDICTS.info("admission, engine alone p50 (baseline)", statistics.median(figures["alone"]), "ms")
        VERDICTS.at_most("admission, wallet shared across nodes p50", statistics.median(figures["shared"]), 2.0, "ms")
        VERDICTS.info("admission, wallet shared across nodes p99", pct(figures["shared"], 0.99), "ms")
    finally:
        await pool.close()


async def main(requests: int) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        server.start()
        try:
            name = f"bench_{secrets.token_hex(4)}"
            await create_database(server.dsn(), name)
            dsn = server.dsn(name)
            await migrate_dsn(dsn)
            pools = [await create_pool(dsn, 4, 8) for _ in range(2)]
            try:
                await rate_limits(pools, requests)
                await node_commands(pools, 200)
            finally:
                for pool in pools:
                    await pool.close()
            await takeover(dsn)
            await admissions(dsn, 500)
        finally:
            server.stop()
    return VERDICTS.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    sys.exit(asyncio.run(main(parser.parse_args().requests)))
