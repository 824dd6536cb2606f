"""Wires the events feed into the daemon (``emit()`` itself needs no wiring)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from controlplane.events import http
from controlplane.plugins import Context, NoAsteriskFiles


@dataclass(frozen=True)
class EventsPlugin(NoAsteriskFiles):
    name: str = "events"
    package: str = "controlplane.events"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is not None:
            app[http.pool_key] = context.pool


PLUGIN = EventsPlugin()
