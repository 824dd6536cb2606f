"""Node commands: a change that concerns one node reaches that node's daemon, whichever daemon
took the request.

The sender writes a row in ``node_commands`` and ``NOTIFY node_<id>`` in one transaction (the
notification leaves at commit, with the row visible). The node's daemon LISTENs on its channel
(``controlplane.db.listen.listen_forever``) and claims its pending rows when notified and each
time the LISTEN is (re)established, so a command sent while it was away runs when it is back.
A row is claimed by the statement that marks it done: each command runs at most once, in the
order sent; a handler that fails is logged (the sender already has its answer).

Which node a tenant lives on is helper K's table (controlplane/nodes, migration 0028);
``node_of_tenant`` is the one read of it here, so the table may change under one query.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog

from controlplane.db.errors import DB_ERRORS
from controlplane.db.listen import listen_forever

log = structlog.get_logger(__name__)
Handler = Callable[[Mapping[str, Any]], Awaitable[None]]
SWEEP_SECONDS = 5.0  # the LISTEN connection is checked this often; a missed NOTIFY waits at most this


def channel(node_id: str) -> str:
    """The NOTIFY channel of a node; node ids are [a-z][a-z0-9-]{0,31} (config.NodeConfig); LISTEN quotes it."""
    return f"node_{node_id}"


async def node_of_tenant(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, default: str) -> str:
    """The node tenant ``tenant_id`` lives on; ``default`` when none is assigned (or no table yet)."""
    try:
        found = await conn.fetchval("SELECT node_id FROM tenant_nodes WHERE tenant_id = $1", tenant_id)
    except asyncpg.UndefinedTableError:  # before migration 0028 (helper K) exists
        return default
    return str(found) if found else default


async def send(conn: asyncpg.Connection | asyncpg.Pool, node_id: str, kind: str, body: Mapping[str, Any]) -> None:
    """Queue a command for ``node_id``'s daemon; it is notified when the caller's transaction commits."""
    await conn.execute(
        "WITH c AS (INSERT INTO node_commands (node_id, kind, body) VALUES ($1, $2, $3::jsonb) RETURNING id)"
        " SELECT pg_notify($4, c.id::text) FROM c", node_id, kind, json.dumps(dict(body)), channel(node_id))


@dataclass
class NodeBus:
    """This daemon's end: the handlers by kind, and the loop that runs its node's commands."""

    pool: asyncpg.Pool
    node_id: str
    handlers: dict[str, Handler] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def on(self, kind: str, handler: Handler) -> None:
        if kind in self.handlers:
            raise ValueError(f"node command {kind!r} already has a handler")
        self.handlers[kind] = handler

    async def send(self, node_id: str, kind: str, body: Mapping[str, Any]) -> None:
        await send(self.pool, node_id, kind, body)

    async def run(self) -> None:
        """Background job: listen on this node's channel and run its commands."""
        listener = asyncio.create_task(listen_forever(
            self.pool, channel(self.node_id), lambda *_: self._wake.set(), period=SWEEP_SECONDS,
            on_listening=self._wake.set,
            on_lost=lambda: log.warning("node_bus.listen_lost", node=self.node_id, exc_info=True)))
        try:
            while True:
                try:
                    async with asyncio.timeout(SWEEP_SECONDS):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()
                try:
                    await self.sweep()
                except DB_ERRORS:
                    log.warning("node_bus.sweep_failed", node=self.node_id, exc_info=True)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def sweep(self) -> int:
        """Claim and run this node's pending commands in order; returns how many ran."""
        rows = await self.pool.fetch(
            "UPDATE node_commands SET done_at = now() WHERE id IN (SELECT id FROM node_commands"
            " WHERE node_id = $1 AND done_at IS NULL ORDER BY id FOR UPDATE SKIP LOCKED)"
            " RETURNING id, kind, body, created_at", self.node_id)
        for row in sorted(rows, key=lambda r: int(r["id"])):
            handler = self.handlers.get(row["kind"])
            if handler is None:
                log.error("node_bus.unknown_command", node=self.node_id, kind=row["kind"], id=row["id"])
                continue
            try:
                await handler(json.loads(row["body"]))
            except Exception:
                log.exception("node_bus.command_failed", node=self.node_id, kind=row["kind"], id=row["id"])
            else:
                log.info("node_bus.command_ran", node=self.node_id, kind=row["kind"], id=row["id"])
        if rows:
            # Done commands stay a day (operator-visible), then go.
            await self.pool.execute("DELETE FROM node_commands WHERE done_at < now() - interval '1 day'")
        return len(rows)
