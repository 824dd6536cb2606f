"""Two "daemons" in one test process: a Context each (own pool, own node id) wired by
controlplane.cluster exactly as the daemon wires it, and the rows the nodes table needs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg

from controlplane.cluster import shared_database
import msgspec

from controlplane.config import Config, HttpConfig, NodeConfig, WebhooksConfig, load_config
from controlplane.db.database import create_pool
from controlplane.plugins import Context


def node_config(node_id: str, peers: tuple[str, ...], lease_seconds: float = 1.5) -> Config:
    base = load_config(environ={})
    return Config(node=NodeConfig(id=node_id, peers=peers, lease_seconds=lease_seconds),
                  http=HttpConfig(service_token="s" * 32, platform_token="p" * 32),
                  webhooks=replace_webhooks(base))


def replace_webhooks(base: Config) -> WebhooksConfig:
    return msgspec.structs.replace(base.webhooks, secret_key="k" * 44)


@dataclass
class FakeDaemon:
    """Not a fake of anything external: the daemon's own wiring, minus HTTP and Asterisk."""

    context: Context
    tasks: list[asyncio.Future[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, dsn: str, node_id: str, peers: tuple[str, ...], lease_seconds: float = 1.5,
                    subscribe: object = None) -> FakeDaemon:
        pool = await create_pool(dsn, 1, 4, node_id=node_id)
        context = Context(config=node_config(node_id, peers, lease_seconds), pool=pool)
        jobs = shared_database(context)
        if callable(subscribe):
            subscribe(context)
        context.signals.freeze()
        daemon = cls(context)
        daemon.tasks = [asyncio.ensure_future(job()) for job in [*jobs, *context.background]]
        return daemon

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.context.pool is not None
        return self.context.pool

    async def stop(self, *, die: bool = False) -> None:
        """``die``: the connections vanish first (nothing released), as with kill -9."""
        if die:
            self.pool.terminate()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if not die:
            await self.pool.close()


async def add_node(conn: asyncpg.Connection | asyncpg.Pool, node_id: str, set_id: int) -> None:
    await conn.execute("INSERT INTO nodes (id, set_id, sip_host, sip_port) VALUES ($1, $2, '127.0.0.1', $3)"
                       " ON CONFLICT DO NOTHING", node_id, set_id, 5060 + set_id)


async def pin(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, node_id: str) -> None:
    await conn.execute("INSERT INTO tenant_nodes (tenant_id, node_id) VALUES ($1, $2)", tenant_id, node_id)
