"""Node commands through the real PostgreSQL: a request taken by daemon B that concerns a tenant
of node A reaches A's daemon (its tenant_status_changed handlers: admission ending the calls)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from cluster_support import FakeDaemon, add_node, pin
from invoice_support import partner, tenant

from controlplane.db.node_bus import NodeBus, node_of_tenant, send
from controlplane.plugins import Context
from controlplane.signals import DialplanChanged, TenantFlowsChanged, TenantStatusChanged


class Seen:
    def __init__(self) -> None:
        self.changes: list[tuple[TenantStatusChanged, float]] = []

    def subscribe(self, context: Context) -> None:
        async def handler(change: TenantStatusChanged) -> None:
            self.changes.append((change, time.monotonic()))
        context.signals.tenant_status_changed.connect(handler)


async def test_a_suspension_taken_by_daemon_b_reaches_node_a(database_dsn: str) -> None:
    async with __import__("asyncpg").create_pool(database_dsn) as setup:
        await add_node(setup, "node-a", 1)
        await add_node(setup, "node-b", 2)
        pid = await partner(setup)
        tid = await tenant(setup, pid, created=datetime.now(UTC))
        await pin(setup, tid, "node-a")
        assert await node_of_tenant(setup, tid, "x") == "node-a"
        assert await node_of_tenant(setup, "ten_unknown", "x") == "x"
    seen_a, seen_b = Seen(), Seen()
    a = await FakeDaemon.start(database_dsn, "node-a", ("node-b",), subscribe=seen_a.subscribe)
    b = await FakeDaemon.start(database_dsn, "node-b", ("node-a",), subscribe=seen_b.subscribe)
    try:
        await asyncio.sleep(0.5)  # both LISTENing
        change = TenantStatusChanged(pid, tid, "ACTIVE", "SUSPENDED", None)
        sent = time.monotonic()
        await b.context.signals.tenant_status_changed.send(change)  # what B's tenants service sends
        for _ in range(40):
            if seen_a.changes:
                break
            await asyncio.sleep(0.05)
        assert [c for c, _ in seen_a.changes] == [change]
        assert seen_a.changes[0][1] - sent < 2.0
        assert [c for c, _ in seen_b.changes] == [change]  # B's own handlers ran too, once
        await asyncio.sleep(0.5)  # nothing bounces back: A re-sent it as relayed
        assert len(seen_a.changes) == 1 and len(seen_b.changes) == 1
        assert await a.pool.fetchval("SELECT count(*) FROM node_commands WHERE done_at IS NULL") == 0
    finally:
        await a.stop()
        await b.stop()


async def test_a_command_sent_while_the_node_is_away_runs_when_it_is_back(database_dsn: str) -> None:
    async with __import__("asyncpg").create_pool(database_dsn) as pool:
        await send(pool, "node-c", "ping", {"n": 1})
        await send(pool, "node-c", "ping", {"n": 2})
        got: list[int] = []

        async def ping(body: object) -> None:
            assert isinstance(body, dict)
            got.append(int(body["n"]))

        bus = NodeBus(pool, "node-c")
        bus.on("ping", ping)
        task = asyncio.create_task(bus.run())
        try:
            for _ in range(40):
                if len(got) == 2:
                    break
                await asyncio.sleep(0.05)
            assert got == [1, 2]  # in order, each once
            await send(pool, "node-c", "ping", {"n": 3})
            for _ in range(40):
                if len(got) == 3:
                    break
                await asyncio.sleep(0.05)
            assert got == [1, 2, 3]
            assert await NodeBus(pool, "node-c").sweep() == 0  # claimed: a second daemon gets nothing
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_dialplan_change_reaches_the_peers_once(database_dsn: str) -> None:
    got: dict[str, list[str]] = {"node-a": [], "node-b": []}

    def subscribe(node: str):  # type: ignore[no-untyped-def]
        def wire(context: Context) -> None:
            context.signals.dialplan_changed.connect(lambda change: got[node].append(change.by))
        return wire

    a = await FakeDaemon.start(database_dsn, "node-a", ("node-b",), subscribe=subscribe("node-a"))
    b = await FakeDaemon.start(database_dsn, "node-b", ("node-a",), subscribe=subscribe("node-b"))
    try:
        await asyncio.sleep(0.5)
        for _ in range(3):  # a burst: one command per peer
            a.context.signals.dialplan_changed.send(DialplanChanged("numbers"))
        for _ in range(40):
            if got["node-b"]:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)
        assert got == {"node-a": ["numbers"] * 3, "node-b": ["numbers"]}, got
    finally:
        await a.stop()
        await b.stop()


async def test_a_tenants_flows_change_reaches_the_peers(database_dsn: str) -> None:
    got: dict[str, list[str]] = {"node-a": [], "node-b": []}

    def subscribe(node: str):  # type: ignore[no-untyped-def]
        def wire(context: Context) -> None:
            context.signals.tenant_flows_changed.connect(lambda change: got[node].append(change.tenant_id))
        return wire

    a = await FakeDaemon.start(database_dsn, "node-a", ("node-b",), subscribe=subscribe("node-a"))
    b = await FakeDaemon.start(database_dsn, "node-b", ("node-a",), subscribe=subscribe("node-b"))
    try:
        await asyncio.sleep(0.5)
        for tenant in ("t1", "t2", "t1"):
            b.context.signals.tenant_flows_changed.send(TenantFlowsChanged(tenant))
        for _ in range(40):
            if got["node-a"]:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)
        assert got == {"node-a": ["t1", "t2"], "node-b": ["t1", "t2", "t1"]}, got
    finally:
        await a.stop()
        await b.stop()
