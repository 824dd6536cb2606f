"""Realtime queues: what app_queue's lookups cost at every Queue(), with a baseline.

Run: .venv/bin/python bench/bench_queues.py [--tenants 1000] [--rounds 2000]
Queues are live without a reload because app_queue reads the queue and its members through
res_config_pgsql at every Queue() (docs/queues.md). That is two SELECTs on our views per caller
entering a queue; this bench times exactly those (as res_config_pgsql spells them) at
``--tenants`` tenants with one 5-member queue each (half the members registered), against the
baseline of the realtime fetch PJSIP already does for every call (ps_endpoints by id).
Target: the pair's p99 under 5 ms; the ratio to the baseline is printed. Exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import asyncpg  # noqa: E402

from scratch_db import scratch_database  # noqa: E402
from verdict import Verdicts  # noqa: E402

VERDICTS = Verdicts("bench_queues")
TARGET_P99_MS = 5.0


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(rounds: int, call: Callable[[int], Awaitable[Any]]) -> list[float]:
    samples = []
    for i in range(rounds):
        t0 = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def populate(conn: asyncpg.Connection, tenants: int) -> tuple[list[str], list[str]]:
    await conn.execute("INSERT INTO partners (id, name, tier) VALUES ('ptr_bench', 'Bench', 'BUSINESS')")
    queues: list[str] = []
    endpoints: list[str] = []
    now = int(time.time())
    for t in range(tenants):
        tid, prefix = f"ten_{t:06d}", f"b{t:06d}"
        await conn.execute("INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status)"
                           " VALUES ($1, 'ptr_bench', $1, $2, 'b@x.co', 'ACTIVE')", tid, prefix)
        qid = uuid.uuid4()
        await conn.execute(
            "INSERT INTO call_queues (id, tenant_id, name, strategy, ring_seconds, max_wait_seconds, max_callers,"
            " moh_class) VALUES ($1, $2, 'Q', 'rrmemory', 15, 300, 0, $3)", qid, tid, f"moh-{prefix}")
        for n in range(101, 106):
            endpoint = f"{prefix}_{n}"
            endpoints.append(endpoint)
            await conn.execute("INSERT INTO call_queue_members (queue_id, number, interface) VALUES ($1, $2, $3)",
                               qid, str(n), f"PJSIP/{endpoint}")
            await conn.execute("INSERT INTO ps_endpoints (id, tenant_id, aors, context) VALUES ($1, $2, $1, $3)",
                               endpoint, tid, f"{prefix}-internal")
            if n % 2:
                await conn.execute("INSERT INTO ps_contacts (id, uri, expiration_time, endpoint) VALUES ($1, $2, $3, $4)",
                                   f"{endpoint}^3B@x", "sip:x@127.0.0.1:5070", now + 3600, endpoint)
        queues.append(f"q-{qid}")
    await conn.execute("ANALYZE")
    return queues, endpoints


async def bench(dsn: str, tenants: int, rounds: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        queues, endpoints = await populate(conn, tenants)
        rng = random.Random(17)
        picks = [rng.randrange(len(queues)) for _ in range(rounds)]

        async def lookup(i: int) -> None:
            name = queues[picks[i]]
            row = await conn.fetchrow("SELECT * FROM queues WHERE name = $1", name)
            members = await conn.fetch("SELECT * FROM queue_members WHERE interface LIKE $1 AND queue_name = $2"
                                       " ORDER BY interface", "%", name)
            assert row is not None and len(members) == 5

        async def baseline(i: int) -> None:
            assert await conn.fetchrow("SELECT * FROM ps_endpoints WHERE id = $1",
                                       endpoints[picks[i] * 5]) is not None

        await timed(50, lookup)  # warm the plans and the cache
        ours, base = await timed(rounds, lookup), await timed(rounds, baseline)
    finally:
        await conn.close()
    VERDICTS.info("queue + members lookup p50", statistics.median(ours), "ms")
    VERDICTS.below("queue + members lookup p99 (under load)", p(ours, 0.99), TARGET_P99_MS, "ms")
    VERDICTS.info("baseline ps_endpoints fetch p50", statistics.median(base), "ms")
    VERDICTS.info("baseline ps_endpoints fetch p99", p(base, 0.99), "ms")
    VERDICTS.info("ratio p50 (queue pair / endpoint fetch)", statistics.median(ours) / statistics.median(base))


async def main(tenants: int, rounds: int) -> int:
    try:
        async with scratch_database("bench-queues-") as dsn:
            await bench(dsn, tenants, rounds)
    except Exception as exc:  # noqa: BLE001 - a broken bench says so in its verdicts
        VERDICTS.broken("bench", f"{type(exc).__name__}: {exc}")
    return VERDICTS.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.tenants, args.rounds)))
