"""API rate limits that hold across daemons: the buckets of ``RateLimiter`` as rows of
``rate_buckets`` (migration 0029), one statement a request (bench/bench_cluster.py)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import asyncpg

from controlplane.db.errors import DB_ERRORS
from controlplane.http.ratelimit import RateLimiter, Verdict


@dataclass
class SharedRateLimiter(RateLimiter):
    """The same buckets as rows of ``rate_buckets`` (migration 0029), one statement a request:
    the database function ``rate_take`` refills both buckets, then takes a token from each when
    both have one, under the rows' locks (the key's first, then its partner's)."""

    pool: asyncpg.Pool | None = None

    async def acquire(self, key_id: str, key_limit: int, partner_id: str) -> Verdict:
        assert self.pool is not None
        row = await self.pool.fetchrow("SELECT * FROM rate_take($1, $2, $3, $4)",
                                       f"k:{key_id}", key_limit, f"p:{partner_id}", self.partner_limit)
        assert row is not None
        if row["allowed"]:
            return Verdict(True, key_limit, int(row["remaining"]))
        limit = key_limit if row["which"] == "key" else self.partner_limit
        return Verdict(False, limit, 0, int(row["retry_after"]), str(row["which"]))

    async def prune_forever(self, period: float = 300.0) -> None:
        """Rows untouched for a minute are full buckets: they hold no information."""
        assert self.pool is not None
        while True:
            await asyncio.sleep(period)
            with contextlib.suppress(*DB_ERRORS):
                await self.pool.execute("DELETE FROM rate_buckets WHERE stamp < now() - interval '61 seconds'")
