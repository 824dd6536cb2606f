"""Leases on the real PostgreSQL: two daemons (two holders, each with its own pool) race for
one job; only one runs it; the holder dying without releasing hands it over within the TTL."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from controlplane.db.lease import Holder, heartbeat, run_under

TTL = 1.5


async def _pool(dsn: str) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
    assert pool is not None
    return pool


class Counter:
    """A job that notes which daemon runs it, tick by tick."""

    def __init__(self) -> None:
        self.ticks: list[tuple[str, float]] = []

    def job(self, who: str):  # type: ignore[no-untyped-def]
        async def run() -> None:
            while True:
                self.ticks.append((who, time.monotonic()))
                await asyncio.sleep(0.05)
        return run


async def test_one_of_two_runs_and_the_other_takes_over_when_it_dies(database_dsn: str) -> None:
    pool_a, pool_b = await _pool(database_dsn), await _pool(database_dsn)
    a, b = Holder(pool_a, "a", "daemon-a", TTL), Holder(pool_b, "b", "daemon-b", TTL)
    counter = Counter()
    task_a = asyncio.create_task(run_under(a, "job.cycle", counter.job("a")))
    await asyncio.sleep(0.3)  # a is first
    task_b = asyncio.create_task(run_under(b, "job.cycle", counter.job("b")))
    try:
        await asyncio.sleep(2 * TTL)
        runners = {who for who, _ in counter.ticks}
        assert runners == {"a"}, runners
        holder = await pool_b.fetchval("SELECT holder FROM leases WHERE name = 'job.cycle'")
        assert holder == "daemon-a"
        # a dies: its connections vanish and its task never gets to release the lease.
        pool_a.terminate()
        died = time.monotonic()
        task_a.cancel()
        await asyncio.gather(task_a, return_exceptions=True)
        await asyncio.sleep(TTL + TTL / 3 + 0.5)
        after = [(who, at) for who, at in counter.ticks if at > died]
        assert after and {who for who, _ in after} == {"b"}, after
        first_b = min(at for who, at in after)
        assert first_b - died <= TTL + TTL / 3 + 0.2, first_b - died
        assert await pool_b.fetchval("SELECT holder FROM leases WHERE name = 'job.cycle'") == "daemon-b"
    finally:
        task_b.cancel()
        await asyncio.gather(task_b, return_exceptions=True)
        await pool_b.close()


async def test_a_clean_stop_releases_at_once(database_dsn: str) -> None:
    pool = await _pool(database_dsn)
    a, b = Holder(pool, "a", "stop-a", 30.0), Holder(pool, "b", "stop-b", 30.0)
    counter = Counter()
    task_a = asyncio.create_task(run_under(a, "job.stop", counter.job("a")))
    await asyncio.sleep(0.3)
    assert await b.take("job.stop") is False  # held for 30 s by a
    task_a.cancel()
    await asyncio.gather(task_a, return_exceptions=True)
    assert await pool.fetchval("SELECT count(*) FROM leases WHERE name = 'job.stop'") == 0
    assert await b.take("job.stop") is True  # no 30 s wait
    await pool.close()


async def test_a_job_that_crashes_is_restarted_under_the_lease(database_dsn: str) -> None:
    pool = await _pool(database_dsn)
    holder = Holder(pool, "a", "crash-a", TTL)
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("boom")

    task = asyncio.create_task(run_under(holder, "job.crash", flaky))
    await asyncio.sleep(2.5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert 2 <= runs <= 4, runs  # once a second, not a hot loop
    await pool.close()


async def test_a_lost_lease_stops_the_job(database_dsn: str) -> None:
    """Another holder taking an expired lease (a stalled renewal) stops the job here."""
    pool = await _pool(database_dsn)
    holder = Holder(pool, "a", "lost-a", TTL)
    counter = Counter()
    task = asyncio.create_task(run_under(holder, "job.lost", counter.job("a")))
    await asyncio.sleep(0.3)
    await pool.execute("UPDATE leases SET holder = 'thief', expires_at = now() + interval '1 hour'"
                       " WHERE name = 'job.lost'")
    await asyncio.sleep(TTL / 3 + 0.3)
    stopped = len(counter.ticks)
    await asyncio.sleep(0.3)
    assert len(counter.ticks) == stopped
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # Cancelled while not holding: the thief's row stays.
    assert await pool.fetchval("SELECT holder FROM leases WHERE name = 'job.lost'") == "thief"
    await pool.close()


@pytest.mark.parametrize("restart", [True])
async def test_the_node_heartbeat_survives_a_restart_of_its_daemon(database_dsn: str, restart: bool) -> None:
    pool = await _pool(database_dsn)
    first = asyncio.create_task(heartbeat(Holder(pool, "n1", "n1:1", TTL)))
    await asyncio.sleep(0.2)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    second = asyncio.create_task(heartbeat(Holder(pool, "n1", "n1:2", TTL)))
    await asyncio.sleep(0.2)
    row = await pool.fetchrow("SELECT holder, expires_at > now() AS alive FROM leases WHERE name = 'node:n1'")
    assert row is not None and row["alive"] and row["holder"] == "node:n1"
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    await pool.close()
