"""The daemon: wires the database, Asterisk, the plugins and the RPC server."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import structlog
from aiohttp import web

from controlplane.asterisk.bring_up import bring_up, log_restart_needed
from controlplane.asterisk.configuration import ReloadPlan
from controlplane.asterisk.link import AsteriskLink
from controlplane.config import Config
from controlplane.db.database import Database, create_pool, migrate_dsn, open_database
from controlplane.db.migrate import MigrationError
from controlplane.cluster import shared_database
from controlplane.http.app import make_app
from controlplane.http.health import Probe, ProbeResult
from controlplane.http.shared_ratelimit import SharedRateLimiter
from controlplane.keystore import install_secret
from controlplane.metrics.listener import start_listener
from controlplane.metrics.live import Metrics, pool_samples
from controlplane.plugin_list import PLUGINS, payment_provider
from controlplane.plugins import Context
from controlplane.preflight import StartupError, check, emergency_configured
from controlplane.shared import money

log = structlog.get_logger(__name__)
POOL_CLOSE_SECONDS = 10.0

__all__ = ["PLUGINS", "Daemon", "running", "serve"]


@dataclass
class DatabaseProbe:
    pool: asyncpg.Pool
    name: str = "database"

    async def check(self) -> ProbeResult:
        await self.pool.fetchval("SELECT 1")
        return ProbeResult(True, "connected")


@dataclass
class EmergencyProbe:
    """Shows whether 911/933 have a trunk; production refuses to start without one,
    so "not configured" is a development state and does not fail readiness."""

    config: Config
    name: str = "emergency"

    async def check(self) -> ProbeResult:
        e = self.config.emergency
        if not emergency_configured(self.config):
            return ProbeResult(True, "not configured")
        relay = f"{e.relay_host}:{e.relay_port}" if e.relay_host else "the trunk"
        trunk = f"{e.trunk_host}:{e.trunk_port}" if e.trunk_host else "the relay"
        return ProbeResult(True, f"trunk {trunk}, relay {relay}")


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
    metrics: Metrics = field(default_factory=Metrics)
    metrics_http: web.AppRunner | None = None

    async def start(self) -> None:
        """Raises ``StartupError`` (one line) before starting anything when the config cannot run."""
        config = self.config
        money.set_currency(config.billing.currency)
        for finding in check(config):
            log.warning("startup.warning", key=finding.key, detail=finding.message)
        self.database = await open_database(config, claim=True)
        applied = await migrate_dsn(self.database.dsn)
        self.pool = await create_pool(self.database.dsn, config.database.pool_min, config.database.pool_max,
                                      node_id=config.node.id)
        log.info("database.ready", migrations_applied=applied, embedded=self.database.embedded is not None)
        brought = await bring_up(config, PLUGINS, self.database.dsn)
        self.runner_started = brought.started_here
        log_restart_needed(brought.reload)
        self.asterisk = AsteriskLink.from_config(config)
        self.context = Context(config=config, pool=self.pool, ari=self.asterisk.ari, ami=self.asterisk.ami,
                               resync=self.asterisk.resync_hooks, ari_events=self.asterisk.ari_handlers,
                               ami_events=self.asterisk.ami_handlers,
                               payments=payment_provider(config.payments), metrics=self.metrics)
        nodes = shared_database(self.context)
        self._daemon_metrics(self.pool, self.asterisk)
        probes: list[Probe] = [DatabaseProbe(self.pool), *self.asterisk.probes(), EmergencyProbe(config)]
        limiter = SharedRateLimiter(pool=self.pool) if config.node.multi else None
        if limiter is not None:
            nodes.append(limiter.prune_forever)
        app = make_app(service_token_value=self.service_token, probes=probes, limiter=limiter,
                       plugins=PLUGINS, context=self.context, platform_token_value=self.platform_token)
        await self.asterisk.start()  # after the plugins subscribed to its events: none is missed
        if brought.reload.commands:
            self.context.background.append(lambda: self._reload(brought.reload))
        self.context.background += nodes
        for job in self.context.background:
            self.tasks.append(asyncio.create_task(_supervised(job)))
        self.http = web.AppRunner(app, access_log=None)
        await self.http.setup()
        await web.TCPSite(self.http, config.http.host, config.http.port).start()
        log.info("http.listening", host=config.http.host, port=config.http.port)
        if config.metrics.port is not None:
            self.metrics_http = await start_listener(self.metrics, config.metrics.host, config.metrics.port)
            log.info("metrics.listening", host=config.metrics.host, port=config.metrics.port)

    async def stop(self) -> None:
        if self.metrics_http is not None:
            await self.metrics_http.cleanup()
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

    def _daemon_metrics(self, pool: asyncpg.Pool, link: AsteriskLink) -> None:
        """What the daemon itself sees; the plugins add theirs in ``install``."""
        metrics = self.metrics
        metrics.gauge("controlplane_db_pool_connections",
                      "Database pool connections, by state (in_use, idle, max).", ("state",),
                      lambda: pool_samples(pool))
        metrics.gauge("controlplane_asterisk_connected", "1 while the ARI or AMI connection is up, else 0.",
                      ("link",), link.connection_samples)
        metrics.query_gauge("controlplane_email_queue_depth", "Emails waiting in the mail outbox.", (), pool,
                            "SELECT count(*) FROM mail_outbox WHERE status = 'PENDING'",
                            needs_table="mail_outbox")

    @property
    def service_token(self) -> str:
        return self.config.http.service_token or install_secret(self.config.data_path, "service_token")

    @property
    def platform_token(self) -> str:
        """The operator's credential (platform operations only), never the portal's."""
        return self.config.http.platform_token or install_secret(self.config.data_path, "platform_token")

    async def _reload(self, plan: ReloadPlan) -> None:
        """Files changed under a running Asterisk: make it re-read them once AMI is there."""
        assert self.asterisk is not None
        ami = self.asterisk.ami
        await ami.wait_connected()
        for command in plan.commands:
            await ami.action({"Action": "Command", "Command": command}, check=False)
        log.info("asterisk.config_reloaded", commands=list(plan.commands))


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
    try:
        async with running(config):
            log.info("daemon.ready", rpc=f"http://{config.http.host}:{config.http.port}")
            await stop.wait()
    except (StartupError, MigrationError) as exc:
        print(f"controlplane: {exc}", file=sys.stderr)
        return 2
    return 0
