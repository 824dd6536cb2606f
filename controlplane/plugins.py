"""How a capability plugs into the daemon.

Each capability is a package (``controlplane/webhooks``, ...) in Wazo's shape:
``plugin.py`` wires, ``services.py`` decides, ``http.py`` speaks HTTP, ``store.py``
holds its SQL, and an ``openapi.yaml`` fragment documents its routes. Its
``plugin.py`` exposes ``PLUGIN``, an object with ``name`` and ``install``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import asyncpg
from aiohttp import web

from controlplane.config import Config

if TYPE_CHECKING:
    from controlplane.asterisk.ami import AmiClient
    from controlplane.asterisk.ari import AriClient

BackgroundTask = Callable[[], Awaitable[None]]


@dataclass
class Context:
    """What a plugin may use; ``background`` collects coroutines the daemon runs."""


    config: Config
    pool: asyncpg.Pool
    ari: AriClient | None = None
    ami: AmiClient | None = None
    background: list[BackgroundTask] = field(default_factory=list)
    # Awaited after Asterisk restarts (ARI/AMI reconnect): restore full state there.
    resync: list[BackgroundTask] = field(default_factory=list)


class Plugin(Protocol):
    name: str
    # The package whose openapi.yaml fragment documents the plugin's routes.
    package: str

    def install(self, app: web.Application, context: Context) -> None: ...
