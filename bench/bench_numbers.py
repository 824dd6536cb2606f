"""Local number search over a 1,000,000-number inventory on a real PostgreSQL.

Target: p99 under 50 ms through NumberServices.search_local (state + optional
area code / city, first 20). Baselines in the same run: the same search with the
partial indexes dropped (what the indexes buy), and a primary-key lookup (the
floor of one round trip). Run: .venv/bin/python bench/bench_numbers.py [--rows N]
Exits 1 when the target is missed (bench/verdict.py).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import tempfile
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import asyncpg  # noqa: E402
from verdict import Verdicts  # noqa: E402

from controlplane.db.database import create_database, migrate_dsn  # noqa: E402
from controlplane.db.embedded import EmbeddedPostgres  # noqa: E402
from controlplane.numbers.services import NumberServices  # noqa: E402

TARGET_P99_MS = 50.0

STATES = ["AR", "TX", "CA", "NY", "FL", "IL", "OH", "GA", "NC", "MI", "WA", "AZ", "MA", "TN", "IN", "MO", "MD",
          "WI", "CO", "MN"]
CITIES = ["Springfield", "Franklin", "Greenville", "Bristol", "Clinton", "Fairview", "Salem", "Madison",
          "Georgetown", "Arlington"]


async def fill(pool: asyncpg.Pool, rows: int) -> None:
    """``rows`` local numbers: 20 states x 10 area codes x NXX blocks, cities and rate centers per NXX."""
    await pool.execute(f"""
        INSERT INTO number_inventory (number, kind, state, city, city_key, rate_center, npa, nxx)
        SELECT '+1' || npa || nxx || lpad(line::text, 4, '0'), 'local', st, city, upper(city), upper(city) || 'RC',
               npa, nxx
        FROM (SELECT g,
                     (ARRAY{STATES!r})[1 + (g / 10000) % 20] AS st,
                     (200 + (g / 10000) % 20 * 10 + (g / 200000))::text AS npa,
                     (200 + (g / 10000) % 700)::text AS nxx,
                     g % 10000 AS line,
                     (ARRAY{CITIES!r})[1 + (g / 10000) % 10] AS city
              FROM generate_series(0, {rows - 1}) AS g) s
        ON CONFLICT DO NOTHING""".replace('"', "'"))
    await pool.execute("ANALYZE number_inventory")


async def timed(label: str, n: int, call) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p50, p99 = statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"{label:<52} n={n:<5} p50={p50:7.2f} ms  p99={p99:7.2f} ms")
    return samples


async def main(rows: int, queries: int) -> int:
    verdicts = Verdicts("bench_numbers")
    with tempfile.TemporaryDirectory(prefix="bench-numbers-") as tmp:
        server = EmbeddedPostgres(Path(tmp))
        server.start()
        try:
            name = f"bench_{secrets.token_hex(4)}"
            await create_database(server.dsn(), name)
            await migrate_dsn(server.dsn(name))
            pool = await asyncpg.create_pool(server.dsn(name), min_size=1, max_size=4)
            assert pool is not None
            await pool.execute("INSERT INTO partners (id, name, tier) VALUES ('ptr_bench', 'Bench', 'STARTER')")
            started = time.perf_counter()
            await fill(pool, rows)
            count = await pool.fetchval("SELECT count(*) FROM number_inventory")
            print(f"inventory: {count:,} numbers loaded in {time.perf_counter() - started:.1f} s")
            services = NumberServices(pool)
            rng = random.Random(7)
            npas = [r["npa"] for r in await pool.fetch("SELECT DISTINCT npa FROM number_inventory")]

            def search(kind: str):  # type: ignore[no-untyped-def]
                async def run() -> None:
                    state = rng.choice(STATES)
                    found = await services.search_local(
                        "ptr_bench", state, rng.choice(npas) if kind == "npa" else None, None, None,
                        rng.choice(CITIES) if kind == "city" else None, 20)
                    assert kind != "state" or found
                return run

            indexed = await timed("search_local(state), indexed", queries, search("state"))
            await timed("search_local(state, area_code), indexed", queries, search("npa"))
            await timed("search_local(state, city), indexed", queries, search("city"))
            await timed("baseline: primary-key lookup", queries, lambda: pool.fetchrow(
                "SELECT * FROM number_inventory WHERE number = $1", f"+1200200{rng.randrange(10000):04d}"))
            for index in ("number_inventory_local", "number_inventory_city", "number_inventory_rate_center"):
                await pool.execute(f"DROP INDEX {index}")
            unindexed = await timed("baseline: search_local(state), no partial indexes", max(10, queries // 20),
                                    search("state"))
            ratio = statistics.median(unindexed) / statistics.median(indexed)
            p99 = indexed[min(len(indexed) - 1, int(len(indexed) * 0.99))]
            print(f"indexed search p99 {p99:.2f} ms; {ratio:,.0f}x faster at p50 than without the indexes")
            verdicts.below(f"search_local(state) p99, {count:,} numbers", p99, TARGET_P99_MS, "ms")
            verdicts.info("speed-up at p50 from the partial indexes", ratio, "x")
            await pool.close()
        finally:
            server.stop()
    return verdicts.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.rows, args.queries)))
