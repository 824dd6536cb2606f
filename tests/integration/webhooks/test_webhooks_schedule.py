"""The retry schedule, end to end: the real worker, real receivers, the database clock moved forward."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import asyncpg

from controlplane.webhooks import schedule
from webhooks_support import (delivery_row, emit_one, endpoint, error_500, eventually, ok_after, receiver,
                              running_worker, set_clock, settings)


async def _walk_to_next_attempt(pool: asyncpg.Pool, worker, rx, path: str, endpoint_id: str, event_id: str,
                                attempt: int) -> asyncpg.Record:
    """Stop 5 s short of the due time (nothing happens), then pass it (attempt ``attempt`` happens)."""
    row = await delivery_row(pool, endpoint_id, event_id)
    delay = schedule.DELAYS[attempt - 1]
    assert row["due_at"] - row["last_attempt_at"] >= timedelta(seconds=delay)
    assert row["due_at"] - row["last_attempt_at"] < timedelta(seconds=delay, milliseconds=500)
    await set_clock(pool, worker, row["due_at"] - timedelta(seconds=5))
    await asyncio.sleep(0.3)
    assert len(rx.at(path)) == attempt - 1, f"attempt {attempt} came before its due time"
    await set_clock(pool, worker, row["due_at"] + timedelta(milliseconds=20))
    await eventually(lambda: len(rx.at(path)) == attempt, message=f"attempt {attempt}")
    await eventually(lambda: _attempts(pool, endpoint_id, event_id, attempt), message="attempt recorded")
    return await delivery_row(pool, endpoint_id, event_id)


async def _attempts(pool: asyncpg.Pool, endpoint_id: str, event_id: str, n: int) -> bool:
    attempts = await pool.fetchval(
        """SELECT d.attempts FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq
           WHERE d.endpoint_id = $1 AND e.id = $2 AND NOT d.manual""", endpoint_id, event_id)
    return attempts == n


async def test_eight_attempts_on_schedule_then_dead(wpool: asyncpg.Pool) -> None:
    async with receiver() as rx, running_worker(wpool, settings()) as worker:
        ep = await endpoint(wpool, "p_sched", rx.on("/always500", error_500))
        event_id = await emit_one(wpool, "p_sched", tenant="t1")
        await eventually(lambda: len(rx.at("/always500")) == 1, message="attempt 1 (immediate)")
        await eventually(lambda: _attempts(wpool, ep.id, event_id, 1))
        row = await delivery_row(wpool, ep.id, event_id)
        assert row["status"] == "FAILED" and row["response_status"] == 500
        for attempt in range(2, 9):
            row = await _walk_to_next_attempt(wpool, worker, rx, "/always500", ep.id, event_id, attempt)
            assert row["status"] == ("DEAD" if attempt == 8 else "FAILED"), attempt
        # DEAD is final: a week later nothing more is sent.
        await set_clock(wpool, worker, row["last_attempt_at"] + timedelta(days=7))
        await asyncio.sleep(0.4)
        assert len(rx.at("/always500")) == 8
        assert {r.event_id for r in rx.at("/always500")} == {event_id}
        bodies = {r.body for r in rx.at("/always500")}
        assert len(bodies) == 1 and json.loads(bodies.pop())["id"] == event_id  # same bytes every time


async def test_recovers_after_failures_and_survives_a_worker_restart(wpool: asyncpg.Pool) -> None:
    async with receiver() as rx:
        url = rx.on("/third_time", ok_after(2))
        async with running_worker(wpool, settings()) as worker:
            ep = await endpoint(wpool, "p_restart", url)
            event_id = await emit_one(wpool, "p_restart")
            await eventually(lambda: _attempts(wpool, ep.id, event_id, 1))
        # The first worker is gone; its schedule is in the database.
        await wpool.execute("UPDATE webhook_endpoints SET enabled = true WHERE id = $1", ep.id)
        async with running_worker(wpool, settings()) as worker:
            await _walk_to_next_attempt(wpool, worker, rx, "/third_time", ep.id, event_id, 2)
            row = await _walk_to_next_attempt(wpool, worker, rx, "/third_time", ep.id, event_id, 3)
            assert row["status"] == "DELIVERED" and row["response_status"] == 200
            assert row["delivered_at"] is not None
            assert await wpool.fetchval("SELECT consecutive_failures FROM webhook_endpoints WHERE id = $1",
                                        ep.id) == 0


async def test_auto_disable_at_100_consecutive_failures_emits_its_event(wpool: asyncpg.Pool) -> None:
    partner = "p_disable"
    async with receiver() as rx, running_worker(wpool, settings(per_endpoint=1)):
        # Requests 1-60 fail, 61 succeeds (the count restarts), every later one fails.
        async def flaky(received, n):  # type: ignore[no-untyped-def]
            return await ok_after(0)(received, n) if n == 61 else await error_500(received, n)

        ep = await endpoint(wpool, partner, rx.on("/flaky", flaky), ["call.completed"])
        watcher = await endpoint(wpool, partner, rx.on("/watcher", ok_after(0)), ["webhook_endpoint.disabled"])

        async def failures() -> int:
            return await wpool.fetchval("SELECT consecutive_failures FROM webhook_endpoints WHERE id = $1", ep.id)

        async def emit_calls(count: int) -> None:
            async with wpool.acquire() as conn, conn.transaction():
                for i in range(count):
                    from controlplane.events import emit
                    await emit(conn, "call.completed", partner_id=partner, tenant_id=f"t{i % 7}", data={"i": i})

        async def attempted(total: int) -> bool:
            return await wpool.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND attempts > 0", ep.id) == total

        await emit_calls(61)
        await eventually(lambda: attempted(61), timeout=10, message="61 first attempts")
        assert await failures() == 0
        await emit_calls(99)
        await eventually(lambda: attempted(160), timeout=10, message="99 more first attempts")
        assert await failures() == 99
        row = await wpool.fetchrow("SELECT enabled FROM webhook_endpoints WHERE id = $1", ep.id)
        assert row["enabled"] is True
        assert rx.at("/watcher") == []

        await emit_calls(1)
        await eventually(lambda: len(rx.at("/watcher")) == 1, message="webhook_endpoint.disabled delivered")
        row = await wpool.fetchrow("SELECT enabled, disabled_reason, consecutive_failures"
                                   " FROM webhook_endpoints WHERE id = $1", ep.id)
        assert (row["enabled"], row["disabled_reason"], row["consecutive_failures"]) == (
            False, "consecutive_failures", 100)
        event = json.loads(rx.at("/watcher")[0].body)
        assert event["type"] == "webhook_endpoint.disabled" and event["partner_id"] == partner
        assert event["data"]["webhook_endpoint"]["id"] == ep.id
        assert event["data"]["webhook_endpoint"]["consecutive_failures"] == 100
        # Disabled: events still owed to it wait, and new ones are not queued for it.
        before = len(rx.at("/flaky"))
        await emit_calls(3)
        await asyncio.sleep(0.4)
        assert len(rx.at("/flaky")) == before
        assert watcher.id != ep.id
