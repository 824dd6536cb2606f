"""Real HTTP receivers on 127.0.0.1, a running worker, and small helpers for the webhook tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
from aiohttp import web

from controlplane.events import emit
from controlplane.webhooks.models import EndpointCreate, EndpointWithSecret
from controlplane.webhooks.resolver import Resolve, system_resolve
from controlplane.secret_box import SecretBox
from controlplane.shared.clock import Clock
from controlplane.webhooks.services import EndpointService
from controlplane.webhooks.settings import Settings
from controlplane.webhooks.targets import LOOPBACK, AllowList
from controlplane.webhooks.worker import Worker

KEY = "test-webhooks-key"
Behaviour = Callable[["Received", int], Awaitable[web.StreamResponse]]


def settings(*, production: bool = False, timeout: float = 0.5, per_endpoint: int = 4, overall: int = 64,
             allow: tuple[str, ...] | None = None) -> Settings:
    """The receivers listen on 127.0.0.1: development allows loopback explicitly (allow_loopback)."""
    if allow is None:
        allow = () if production else LOOPBACK
    return Settings(production=production, allow=AllowList.parse(allow), timeout=timeout,
                    per_endpoint_concurrency=per_endpoint, max_concurrency=overall)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()

    @property
    def event_id(self) -> str:
        return self.headers["Webhook-Id"]


async def ok(received: Received, n: int) -> web.StreamResponse:
    return web.Response(text="ok")


async def error_500(received: Received, n: int) -> web.StreamResponse:
    return web.Response(status=500, text="boom")


def ok_after(failures: int) -> Behaviour:
    """500 for the first ``failures`` requests to the path, 200 afterwards."""
    async def behaviour(received: Received, n: int) -> web.StreamResponse:
        return web.Response(status=500 if n <= failures else 200, text=f"request {n}")
    return behaviour


def sleeping(seconds: float) -> Behaviour:
    async def behaviour(received: Received, n: int) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.Response(text="slow ok")
    return behaviour


@dataclass
class Receiver:
    """An aiohttp server; each path has its behaviour; every request is recorded."""

    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    active: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str, behaviour: Behaviour) -> str:
        self.behaviours[path] = behaviour
        return self.url(path)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/close"):
            # Read the request, then drop the connection without a response.
            await request.read()
            self.received.append(Received(request.path, dict(request.headers), b"", time.monotonic()))
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(0.05)
            return web.Response(status=200)
        received = Received(request.path, dict(request.headers), await request.read(), time.monotonic())
        self.received.append(received)
        self.active[request.path] = self.active.get(request.path, 0) + 1
        self.peak[request.path] = max(self.peak.get(request.path, 0), self.active[request.path])
        try:
            behaviour = self.behaviours.get(request.path, ok)
            return await behaviour(received, len(self.at(request.path)))
        finally:
            self.active[request.path] -= 1


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", state._handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield state
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_worker(pool: asyncpg.Pool, config: Settings, *, resolve: Resolve = system_resolve,
                         poll_interval: float = 0.2) -> AsyncIterator[Worker]:
    worker = Worker(pool=pool, settings=config, box=SecretBox(KEY), resolve=resolve,
                    clock=Clock(), poll_interval=poll_interval)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        crashed = task.done() and not task.cancelled() and task.exception()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # Nothing of this test may be delivered by the next one's worker.
        await pool.execute("UPDATE webhook_endpoints SET enabled = false")
    assert not crashed, f"the worker crashed: {crashed!r}"
    assert worker.errors == 0, "the worker hit database errors (see the log)"


def service(pool: asyncpg.Pool, config: Settings, resolve: Resolve = system_resolve) -> EndpointService:
    return EndpointService(pool, config, SecretBox(KEY), resolve)


async def endpoint(pool: asyncpg.Pool, partner: str, url: str, types: list[str] | None = None,
                   config: Settings | None = None) -> EndpointWithSecret:
    return await service(pool, config or settings()).create(
        partner, EndpointCreate(url=url, event_types=types or ["*"]))


async def emit_one(pool: asyncpg.Pool, partner: str, event_type: str = "tenant.created",
                   tenant: str | None = None, **data: object) -> str:
    async with pool.acquire() as conn, conn.transaction():
        event = await emit(conn, event_type, partner_id=partner, tenant_id=tenant, data=data or {"n": 0})
    return event.id


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 5.0,
                     message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(0.02)


async def set_clock(pool: asyncpg.Pool, worker: Worker, target: datetime) -> None:
    """Make the worker's ``now()`` read ``target`` (then it runs on with real time)."""
    real: datetime = await pool.fetchval("SELECT now()")
    worker.clock.offset = target - real
    worker.wake()


async def delivery_row(pool: asyncpg.Pool, endpoint_id: str, event_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        """SELECT d.* FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq
           WHERE d.endpoint_id = $1 AND e.id = $2 AND NOT d.manual""", endpoint_id, event_id)
    assert row is not None
    return row


def seconds(delta: timedelta) -> float:
    return delta.total_seconds()
