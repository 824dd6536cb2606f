"""Wires the audit log's query route and the generic entry of unaudited mutations
(``record()`` itself needs no wiring)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from controlplane.audit import http
from controlplane.http.middleware import mutation_auditor
from controlplane.plugins import Context, NoAsteriskFiles


@dataclass(frozen=True)
class AuditPlugin(NoAsteriskFiles):
    name: str = "audit"
    package: str = "controlplane.audit"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is not None:
            app[http.pool_key] = context.pool
            app[mutation_auditor] = http.MutationEntries(context.pool)


PLUGIN = AuditPlugin()
