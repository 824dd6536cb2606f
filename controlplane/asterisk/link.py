"""The daemon's two connections to Asterisk, ARI and AMI, and their readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from controlplane.asterisk.ami import AmiClient
from controlplane.asterisk.ari import AriClient
from controlplane.asterisk.credentials import resolve_credentials
from controlplane.asterisk.events import AmiHandler, AriEvent, AriHandler
from controlplane.config import Config
from controlplane.http.health import ProbeResult
from controlplane.metrics.families import ASTERISK_RECONNECTS

log = structlog.get_logger(__name__)

Resync = Callable[[], Awaitable[None]]


@dataclass
class AsteriskLink:
    """Owns the clients; ``resync_hooks`` run after Asterisk comes back, ``ari_handlers``
    and ``ami_handlers`` get every event (subscribe them before ``start``)."""

    ari: AriClient
    ami: AmiClient
    resync_hooks: list[Resync] = field(default_factory=list)
    ari_handlers: list[AriHandler] = field(default_factory=list)
    ami_handlers: list[AmiHandler] = field(default_factory=list)
    _ari_task: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, config: Config) -> AsteriskLink:
        creds = resolve_credentials(config)
        host = config.asterisk.host
        # Only our Stasis channels over ARI: every channel's events already come over AMI
        # (filtered to what we use in manager.conf), and twice the stream costs at load.
        ari = AriClient(f"http://{host}:{config.asterisk.http_port}", creds.ari_user,
                        creds.ari_password, config.asterisk.app, subscribe_all=False)
        ami = AmiClient(host, config.asterisk.ami_port, creds.ami_user, creds.ami_password)
        link = cls(ari, ami)
        ari.on_reconnect = lambda: link._resync("ari")
        ami.on_reconnect = lambda: link._resync("ami")
        return link

    async def start(self) -> None:
        for handler in self.ami_handlers:
            self.ami.on("*", handler)
        await self.ami.start()
        self._ari_task = asyncio.create_task(self.ari.run(self._on_ari), name="ari-events")

    async def _on_ari(self, event: AriEvent) -> None:
        for handler in self.ari_handlers:
            await handler(event)

    async def stop(self) -> None:
        await self.ari.close()
        if self._ari_task is not None:
            await asyncio.gather(self._ari_task, return_exceptions=True)
        await self.ami.close()

    async def _resync(self, via: str) -> None:
        # Both clients report a restart; each hook must be idempotent.
        log.info("asterisk.reconnected", via=via, hooks=len(self.resync_hooks))
        ASTERISK_RECONNECTS.labels(via).inc()
        for hook in self.resync_hooks:
            await hook()

    def connection_samples(self) -> list[tuple[tuple[str, ...], float]]:
        """For the metrics: 1 per connected link, 0 per one being re-established."""
        return [(("ari",), float(self.ari.connected)), (("ami",), float(self.ami.connected))]

    def probes(self) -> list[_ConnectionProbe]:
        return [_ConnectionProbe("ari", lambda: self.ari.connected),
                _ConnectionProbe("ami", lambda: self.ami.connected)]


@dataclass
class _ConnectionProbe:
    name: str
    is_connected: Callable[[], bool]

    async def check(self) -> ProbeResult:
        if self.is_connected():
            return ProbeResult(True, "connected")
        return ProbeResult(False, "disconnected; reconnecting")
