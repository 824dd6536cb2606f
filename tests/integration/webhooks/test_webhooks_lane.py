"""The worker's lane against a real PostgreSQL: what a dead dispatcher held in memory is
recovered from the cursor, and what waits for an endpoint that is disabled goes to rows."""

from __future__ import annotations

import asyncio

import asyncpg

from controlplane.events import emit
from controlplane.secret_box import SecretBox
from controlplane.webhooks.worker import Worker
from webhooks_support import (KEY, eventually, endpoint, ok, receiver, running_worker, service, settings,
                              sleeping)


async def emit_in_order(pool: asyncpg.Pool, partner: str, count: int) -> list[str]:
    async with pool.acquire() as conn, conn.transaction():
        return [(await emit(conn, "tenant.updated", partner_id=partner, tenant_id="t", data={"i": i})).id
                for i in range(count)]


async def rows(pool: asyncpg.Pool, endpoint_id: str, status: str | None = None) -> int:
    return int(await pool.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND NOT manual"
        " AND ($2::text IS NULL OR status = $2)", endpoint_id, status))


async def test_a_dead_dispatchers_lane_is_recovered_and_each_event_delivered(wpool: asyncpg.Pool) -> None:
    async with receiver() as rx:
        ep = await endpoint(wpool, "p_lane", rx.on("/lane", sleeping(0.3)))
        first = Worker(pool=wpool, settings=settings(per_endpoint=1), box=SecretBox(KEY), poll_interval=0.2)
        task = asyncio.create_task(first.run())
        ids = await emit_in_order(wpool, "p_lane", 5)
        await eventually(lambda: len(rx.at("/lane")) == 1, message="the first attempt")
        task.cancel()  # dies with one attempt in flight and four deliveries in its lane only
        await asyncio.gather(task, return_exceptions=True)
        assert await rows(wpool, ep.id) == 0  # nothing of them was stored
        rx.on("/lane", ok)
        async with running_worker(wpool, settings()):
            await eventually(lambda: _delivered(wpool, ep.id, 5), message="the five delivered")
        got = [r.event_id for r in rx.at("/lane")]
        assert list(dict.fromkeys(got)) == ids  # first attempts in order; the one cut short again
        assert await rows(wpool, ep.id) == 5  # one row per event


async def test_an_endpoint_disabled_with_deliveries_in_the_lane_gets_them_when_enabled(wpool: asyncpg.Pool) -> None:
    async with receiver() as rx, running_worker(wpool, settings(per_endpoint=1)):
        ep = await endpoint(wpool, "p_spill", rx.on("/spill", sleeping(0.3)))
        ids = await emit_in_order(wpool, "p_spill", 4)
        await eventually(lambda: len(rx.at("/spill")) == 1, message="the first attempt")
        await service(wpool, settings()).set_enabled("p_spill", ep.id, False)
        await eventually(lambda: _pending(wpool, ep.id, 3), message="the lane's three stored")
        await asyncio.sleep(0.5)
        assert len(rx.at("/spill")) == 1  # nothing more sent while disabled
        await service(wpool, settings()).set_enabled("p_spill", ep.id, True)
        await eventually(lambda: _delivered(wpool, ep.id, 4), message="all four delivered")
        assert [r.event_id for r in rx.at("/spill")] == ids


async def _delivered(pool: asyncpg.Pool, endpoint_id: str, count: int) -> bool:
    return await rows(pool, endpoint_id, "DELIVERED") == count


async def _pending(pool: asyncpg.Pool, endpoint_id: str, count: int) -> bool:
    return await rows(pool, endpoint_id, "PENDING") == count
