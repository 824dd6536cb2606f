"""Wires the audit log's query route (``record()`` itself needs no wiring)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from controlplane.audit import http
from controlplane.plugins import Context


@dataclass(frozen=True)
class AuditPlugin:
    name: str = "audit"
    package: str = "controlplane.audit"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is not None:
            app[http.pool_key] = context.pool


PLUGIN = AuditPlugin()
