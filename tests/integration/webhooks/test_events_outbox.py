"""emit(): the event exists iff the caller's transaction commits."""

from __future__ import annotations

import json

import asyncpg
import msgspec
import pytest

from controlplane.events import NotInTransaction, UnknownEventType, emit
from controlplane.events.store import sequence_pending
from webhooks_support import endpoint


class Suspended(msgspec.Struct):
    tenant_id: str
    reason: str


async def test_rolled_back_changes_leave_no_event_and_no_delivery(wpool: asyncpg.Pool) -> None:
    await endpoint(wpool, "p_tx", "https://93.184.216.34/", ["*"])
    async with wpool.acquire() as conn:
        with pytest.raises(RuntimeError, match="rollback"):
            async with conn.transaction():
                event = await emit(conn, "tenant.suspended", partner_id="p_tx", tenant_id="t1",
                                   data=Suspended("t1", "unpaid"))
                raise RuntimeError("rollback")
        async with conn.transaction():
            kept = await emit(conn, "tenant.suspended", partner_id="p_tx", tenant_id="t1",
                              data=Suspended("t1", "unpaid"))
        async with conn.transaction():
            await sequence_pending(conn, 100)
    ids = [r["id"] for r in await wpool.fetch("SELECT id FROM events WHERE partner_id = 'p_tx'")]
    assert ids == [kept.id] and event.id not in ids
    body = await wpool.fetchval("SELECT body FROM events WHERE id = $1", kept.id)
    assert bytes(body) == kept.body
    assert json.loads(body)["data"] == {"tenant_id": "t1", "reason": "unpaid"}


async def test_programming_errors_raise(wpool: asyncpg.Pool) -> None:
    async with wpool.acquire() as conn:
        with pytest.raises(NotInTransaction):
            await emit(conn, "tenant.created", partner_id="p", data={})
        async with conn.transaction():
            with pytest.raises(UnknownEventType):
                await emit(conn, "tenant.exploded", partner_id="p", data={})
            with pytest.raises(TypeError):
                await emit(conn, "tenant.created", partner_id="p", data=[1])  # type: ignore[arg-type]


async def test_positions_follow_emit_order_within_a_transaction(wpool: asyncpg.Pool) -> None:
    async with wpool.acquire() as conn:
        async with conn.transaction():
            ids = [(await emit(conn, "call.initiated", partner_id="p_pos", data={"i": i})).id for i in range(50)]
        async with conn.transaction():
            await sequence_pending(conn, 7)  # in several batches
        async with conn.transaction():
            await sequence_pending(conn, 1000)
    rows = await wpool.fetch("SELECT id FROM events WHERE partner_id = 'p_pos' ORDER BY position")
    assert [r["id"] for r in rows] == ids
