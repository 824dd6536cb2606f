"""The daemon: wires the database, Asterisk, the plugins and the RPC server."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import structlog
from aiohttp import web

from cdr_ingest.tracker import CallTracker
from controlplane.asterisk.link import AsteriskLink
from controlplane.config import AsteriskRunMode, Config
from controlplane.db.database import Database, create_pool, migrate_dsn, open_database
from controlplane.http.app import make_app
from controlplane.http.health import Probe, ProbeResult
from controlplane.keystore import install_secret
from controlplane.limits.plugin import PLUGIN as LIMITS
from controlplane.apikeys.plugin import PLUGIN as APIKEYS
from controlplane.audit.plugin import PLUGIN as AUDIT
from controlplane.events.plugin import PLUGIN as EVENTS
from controlplane.numbers.plugin import PLUGIN as NUMBERS
from controlplane.numbers.plugin import asterisk_files as numbers_asterisk_files
from controlplane.plugins import Context, Plugin
from controlplane.tenants.plugin import PLUGIN as TENANTS
from controlplane.tenants.plugin import asterisk_extra_files
from controlplane.calls import plugin as calls_plugin
from controlplane.webhooks.plugin import PLUGIN as WEBHOOKS

log = structlog.get_logger(__name__)
POOL_CLOSE_SECONDS = 10.0

PLUGINS: list[Plugin] = [TENANTS, EVENTS, WEBHOOKS, NUMBERS, APIKEYS, AUDIT, calls_plugin.PLUGIN, LIMITS]


@dataclass
class DatabaseProbe:
    pool: asyncpg.Pool
    name: str = "database"

    async def check(self) -> ProbeResult:
        await self.pool.fetchval("SELECT 1")
        return ProbeResult(True, "connected")


@dataclass
class Daemon:
    """Everything the daemon runs; ``start`` and ``stop`` are symmetric."""

    config: Config
    database: Database | None = None
    pool: asyncpg.Pool | None = None
    runner_started: bool = False
    http: web.AppRunner | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    context: Context | None = None
    asterisk: AsteriskLink | None = None
    calls: CallTracker = field(default_factory=CallTracker)

    async def start(self) -> None:
        config = self.config
        self.database = await open_database(config)
        applied = await migrate_dsn(self.database.dsn)
        self.pool = await create_pool(self.database.dsn, config.database.pool_min, config.database.pool_max)
        log.info("database.ready", migrations_applied=applied, embedded=self.database.embedded is not None)
        await self._start_asterisk()
        self.asterisk = AsteriskLink.from_config(config)
        await self.asterisk.start(self.calls.on_ari, self.calls.on_ami)
        self.context = Context(config=config, pool=self.pool, ari=self.asterisk.ari, ami=self.asterisk.ami,
                               resync=self.asterisk.resync_hooks)
        probes: list[Probe] = [DatabaseProbe(self.pool), *self.asterisk.probes()]
        app = make_app(service_token_value=self.service_token, probes=probes,
                       plugins=PLUGINS, context=self.context)
        calls_plugin.attach_tracker(app, self.calls)
        for job in self.context.background:
            self.tasks.append(asyncio.create_task(_supervised(job)))
        self.http = web.AppRunner(app, access_log=None)
        await self.http.setup()
        await web.TCPSite(self.http, config.http.host, config.http.port).start()
        log.info("http.listening", host=config.http.host, port=config.http.port)

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.cleanup()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.asterisk is not None:
            await self.asterisk.stop()
        if self.pool is not None:
            try:  # close() waits for every connection to come back: a leaked one must not hang a stop
                await asyncio.wait_for(self.pool.close(), POOL_CLOSE_SECONDS)
            except TimeoutError:
                log.error("database.pool_close_timeout", seconds=POOL_CLOSE_SECONDS)
                self.pool.terminate()
        if self.runner_started:
            from controlplane.asterisk.runner import runner_for

            await asyncio.to_thread(runner_for(self.config).down)
        if self.database is not None:
            await asyncio.to_thread(self.database.stop)
        log.info("daemon.stopped")

    @property
    def service_token(self) -> str:
        return self.config.http.service_token or install_secret(self.config.data_path, "service_token")

    async def _start_asterisk(self) -> None:
        if self.config.asterisk.run is AsteriskRunMode.EXTERNAL:
            return
        from controlplane.asterisk.runner import runner_for

        assert self.database is not None
        extra = {**asterisk_extra_files(self.database.dsn),
                 **calls_plugin.asterisk_files(self.config, self.database.dsn)}
        for name, text in numbers_asterisk_files(self.config).items():  # appended: others may share the file
            extra[name] = extra.get(name, "") + text
        runner = runner_for(self.config, extra_files=extra)
        was_running = (await asyncio.to_thread(runner.status)).running
        status = await asyncio.to_thread(runner.up)
        self.runner_started = not was_running
        log.info("asterisk.up", detail=status.detail, started_here=self.runner_started)


async def _supervised(job: object) -> None:
    """Run a plugin's background job; restart it after a crash, never silently."""
    assert callable(job)
    while True:
        try:
            await job()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background.crashed", job=getattr(job, "__qualname__", repr(job)))
            await asyncio.sleep(1.0)


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[Daemon]:
    daemon = Daemon(config)
    try:
        await daemon.start()
        yield daemon
    finally:
        await daemon.stop()


async def serve(config: Config) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(config):
        log.info("daemon.ready", rpc=f"http://{config.http.host}:{config.http.port}")
        await stop.wait()
    return 0
