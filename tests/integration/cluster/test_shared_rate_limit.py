"""API rate limits across daemons: two limiters on two pools (two daemons behind a load
balancer) share the buckets in PostgreSQL, so a key gets its limit, not twice it."""

from __future__ import annotations

import asyncio

import asyncpg

from controlplane.http.ratelimit import RateLimiter
from controlplane.http.shared_ratelimit import SharedRateLimiter


async def test_two_daemons_share_one_keys_minute(database_dsn: str) -> None:
    pools = [await asyncpg.create_pool(database_dsn, min_size=2, max_size=4) for _ in range(2)]
    try:
        daemons = [SharedRateLimiter(partner_limit=1000, pool=p) for p in pools]
        # 60 requests a minute for the key, 100 sent at once, alternating between the daemons.
        verdicts = await asyncio.gather(*(daemons[i % 2].acquire("key1", 60, "ptr1") for i in range(100)))
        allowed = [v for v in verdicts if v.allowed]
        assert len(allowed) in (60, 61), len(allowed)  # + at most the refill of the test's own duration
        refused = [v for v in verdicts if not v.allowed]
        assert {(v.which, v.limit) for v in refused} == {("key", 60)}
        assert all(v.retry_after >= 1 for v in refused)
        # What one process alone would have allowed: the whole minute on each daemon.
        local = [RateLimiter(partner_limit=1000) for _ in range(2)]
        assert sum(local[i % 2].take("key1", 60, "ptr1").allowed for i in range(100)) == 100
    finally:
        for pool in pools:
            await pool.close()


async def test_the_partner_limit_holds_across_keys_and_daemons(database_dsn: str) -> None:
    pools = [await asyncpg.create_pool(database_dsn, min_size=1, max_size=2) for _ in range(2)]
    try:
        a, b = (SharedRateLimiter(partner_limit=5, pool=p) for p in pools)
        got = [await (a if i % 2 else b).acquire(f"key{i}", 100, "ptr2") for i in range(8)]
        assert [v.allowed for v in got] == [True] * 5 + [False] * 3
        assert {v.which for v in got[5:]} == {"partner"}
        # A refusal by the partner took no token from the key: key7 still has its 100 (minus none).
        row = await pools[0].fetchrow("SELECT tokens FROM rate_buckets WHERE name = 'k:key7'")
        assert row is not None and row["tokens"] >= 99.9
        # An edited key limit resets its bucket to the new capacity.
        edited = await a.acquire("key0", 3, "ptr-other")
        assert edited.allowed and edited.remaining == 2
    finally:
        for pool in pools:
            await pool.close()
