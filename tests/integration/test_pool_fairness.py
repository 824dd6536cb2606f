"""The daemon's pool (``create_pool``) on the real PostgreSQL hands its connections out in
arrival order: with every connection taken, waiters get one first come, first served."""

from __future__ import annotations

import asyncio

from controlplane.db.database import create_pool
from controlplane.db.fair_pool import FairHolderQueue


async def test_waiters_get_connections_in_arrival_order(database_dsn: str) -> None:
    pool = await create_pool(database_dsn, min_size=2, max_size=2)
    try:
        assert isinstance(pool._queue, FairHolderQueue)  # type: ignore[attr-defined]
        held = [await pool.acquire(), await pool.acquire()]
        order: list[int] = []

        async def query(i: int) -> None:
            async with pool.acquire() as conn:
                order.append(i)
                assert await conn.fetchval("SELECT $1::int", i) == i

        waiters = []
        for i in range(8):
            waiters.append(asyncio.create_task(query(i)))
            await asyncio.sleep(0)  # parked in this order
        for conn in held:
            await pool.release(conn)
        await asyncio.wait_for(asyncio.gather(*waiters), 10)
        assert order == list(range(8))
        # Everything came back: both connections free again.
        assert pool._queue.qsize() == 2  # type: ignore[attr-defined]
    finally:
        await pool.close()
