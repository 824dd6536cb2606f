"""The daemon's two connections to Asterisk, ARI and AMI, and their readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from controlplane.asterisk.ami import AmiClient
from controlplane.asterisk.ari import AriClient
from controlplane.asterisk.credentials import resolve_credentials
from controlplane.asterisk.events import AmiEvent, AriEvent
from controlplane.config import Config
from controlplane.http.health import ProbeResult

log = structlog.get_logger(__name__)

AriHandler = Callable[[AriEvent], Awaitable[None]]
AmiHandler = Callable[[AmiEvent], Awaitable[None] | None]
Resync = Callable[[], Awaitable[None]]


@dataclass
class AsteriskLink:
    """Owns the clients; ``on_resync`` hooks run after Asterisk comes back."""

    ari: AriClient
    ami: AmiClient
    resync_hooks: list[Resync] = field(default_factory=list)
    _ari_task: asyncio.Task[None] | None = None
    _filter_task: asyncio.Task[None] | None = None
    ami_filters: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> AsteriskLink:
        creds = resolve_credentials(config)
        host = config.asterisk.host
        ari = AriClient(f"http://{host}:{config.asterisk.http_port}", creds.ari_user,
                        creds.ari_password, config.asterisk.app)
        ami = AmiClient(host, config.asterisk.ami_port, creds.ami_user, creds.ami_password)
        link = cls(ari, ami)
        ari.on_reconnect = lambda: link._resync("ari")
        ami.on_reconnect = link._ami_reconnected
        return link

    async def start(self, on_ari: AriHandler, on_ami: AmiHandler,
                    ami_filters: Sequence[tuple[str, str]] = ()) -> None:
        """``ami_filters``: (MatchCriteria, Filter) of the events the daemon consumes, sent
        as AMI ``Filter`` actions on every login; none = every event."""
        self.ami_filters = tuple(ami_filters)
        self.ami.on("*", on_ami)
        await self.ami.start()
        self._filter_task = asyncio.create_task(self._first_filter(), name="ami-filter")
        self._ari_task = asyncio.create_task(self.ari.run(on_ari), name="ari-events")

    async def _first_filter(self) -> None:
        await self.ami.wait_connected()
        await self._filter_ami()

    async def _ami_reconnected(self) -> None:
        await self._filter_ami()  # filters live per session: a new login has none
        await self._resync("ami")

    async def _filter_ami(self) -> None:
        if not self.ami_filters:
            return
        try:
            for criteria, expression in self.ami_filters:
                await self.ami.action({"Action": "Filter", "Operation": "Add", "MatchCriteria": criteria,
                                       "Filter": expression}, timeout=5.0)
        except Exception as exc:  # noqa: BLE001 - unfiltered still works, only costs more
            log.warning("ami.filter_failed", error=str(exc) or type(exc).__name__)
            return
        log.info("ami.filtered", filters=len(self.ami_filters))

    async def stop(self) -> None:
        if self._filter_task is not None:
            self._filter_task.cancel()
            await asyncio.gather(self._filter_task, return_exceptions=True)
        await self.ari.close()
        if self._ari_task is not None:
            await asyncio.gather(self._ari_task, return_exceptions=True)
        await self.ami.close()

    async def _resync(self, via: str) -> None:
        # Both clients report a restart; each hook must be idempotent.
        log.info("asterisk.reconnected", via=via, hooks=len(self.resync_hooks))
        for hook in self.resync_hooks:
            await hook()

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
