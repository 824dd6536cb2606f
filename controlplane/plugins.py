"""How a capability plugs into the daemon.

Each capability is a package (``controlplane/webhooks``, ...) in Wazo's shape:
``plugin.py`` wires, ``services.py`` decides, ``http.py`` speaks HTTP, ``store.py``
holds its SQL, and an ``openapi.yaml`` fragment documents its routes. Its
``plugin.py`` exposes ``PLUGIN``, an object with ``name``, ``install`` and
``asterisk_files``. Everything a plugin adds to the daemon goes through these:
routes, background jobs and resync hooks in ``install`` (on the ``Context``), the
files it gives Asterisk in ``asterisk_files``, its reactions to other capabilities as
subscriptions to ``controlplane.signals``. The daemon and the CLI iterate the plugin
list (``controlplane.plugin_list``) in its order, never sorted, and name no plugin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import asyncpg
from aiohttp import web

from controlplane.config import Config
from controlplane.db.lease import Holder
from controlplane.db.node_bus import NodeBus
from controlplane.shared.media import MediaStore
from controlplane.shared.payments import PaymentProvider
from controlplane.metrics.live import Metrics
from controlplane.signals import Signals

if TYPE_CHECKING:
    from controlplane.destinations import Destinations, FlowSection
    from controlplane.asterisk.ami import AmiClient
    from controlplane.asterisk.ari import AriClient
    from controlplane.asterisk.events import AmiHandler, AriHandler

BackgroundTask = Callable[[], Awaitable[None]]


@dataclass
class Context:
    """What a plugin may use, and the one place it declares what it adds.

    A plugin reads ``config``, ``pool`` and ``ari``/``ami``; it appends its
    long-running jobs to ``background``, its after-Asterisk-restart hooks to
    ``resync`` and its followers of Asterisk's event streams to ``ari_events``/``ami_events``; it reacts to other capabilities only through ``signals`` (subscribing
    in ``install``, frozen once every plugin is installed). It never reads another
    plugin's app keys nor sets attributes on another plugin's objects.
    """

    config: Config
    # None: routes only, no database (the OpenAPI contract tests wire the app that way).
    pool: asyncpg.Pool | None
    ari: AriClient | None = None
    ami: AmiClient | None = None
    background: list[BackgroundTask] = field(default_factory=list)
    # Awaited after Asterisk restarts (ARI/AMI reconnect): restore full state there.
    resync: list[BackgroundTask] = field(default_factory=list)
    # Called with every ARI/AMI event, in order; the daemon subscribes them before it connects,
    # so a follower (the calls plugin's tracker) misses nothing.
    ari_events: list[AriHandler] = field(default_factory=list)
    ami_events: list[AmiHandler] = field(default_factory=list)
    signals: Signals = field(default_factory=Signals)
    # The platform's payment provider (controlplane.payments); None: payments disabled.
    payments: PaymentProvider | None = None
    # Gauges read at scrape time (controlplane.metrics): a plugin adds what only it can see.
    metrics: Metrics = field(default_factory=Metrics)
    # Call flows (controlplane.destinations): each owner of destination kinds appends its
    # section; the flows capability sets ``destinations``, the recordings one ``media``.
    flow_sections: list[FlowSection] = field(default_factory=list)
    destinations: Destinations | None = None
    media: MediaStore | None = None
    # Several daemons on one database (docs/scale.md): ``leases`` takes the leases of once-only
    # jobs (None in single-node mode: jobs run in the one daemon), ``node_bus`` carries commands
    # to the daemon of the node they concern (None in single-node mode: every node is this one).
    leases: Holder | None = None
    node_bus: NodeBus | None = None

    def once(self, lease: str, job: BackgroundTask) -> BackgroundTask:
        """``job`` as a job that only the daemon holding ``lease`` runs (controlplane.db.lease)."""
        return job if self.leases is None else self.leases.once(lease, job)


@dataclass(frozen=True)
class AsteriskSource:
    """What a plugin renders its Asterisk files from.

    ``dsn`` is the database Asterisk reads (realtime, CDRs); ``conn`` reads state
    such as the dialplan. Both are None when the database cannot be reached (the CLI
    with the embedded server down): files that need them are then left out, and the
    ones written earlier are kept.
    """

    config: Config
    dsn: str | None = None
    conn: asyncpg.Connection | None = None


class Plugin(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def package(self) -> str:
        """The package whose openapi.yaml fragment documents the plugin's routes."""
        ...

    def install(self, app: web.Application, context: Context) -> None: ...

    async def asterisk_files(self, source: AsteriskSource) -> Mapping[str, str]:
        """File name -> text written beside Asterisk's base configuration, verbatim.

        Files of the same name from several plugins are concatenated in plugin order
        (``controlplane.asterisk.configuration``)."""
        ...


class NoAsteriskFiles:
    """Mixin for plugins that give Asterisk nothing."""

    async def asterisk_files(self, source: AsteriskSource) -> Mapping[str, str]:
        return {}
