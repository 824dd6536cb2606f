"""Wires the reports: the routes (partner views, CSV exports, settings, the platform's view) and
the monthly report mail job (every 15 minutes, under the ``reports.monthly`` lease; the outbox
reference keeps each partner's month to one mail whatever runs it). The usage and cost rollup is
kept by database triggers (migration 0023): no signal needed."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from aiohttp import web

from controlplane.plugins import Context, NoAsteriskFiles
from controlplane.reports import http, monthly
from controlplane.reports.services import ReportServices
from controlplane.shared.money import currency

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReportsPlugin(NoAsteriskFiles):
    name: str = "reports"
    package: str = "controlplane.reports"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # contract tests only wire the routes
            return
        pool = context.pool
        app[http.report_services] = ReportServices(pool, currency())
        context.background.append(context.once("reports.monthly", lambda: monthly.forever(pool, currency())))
        log.info("reports.installed")


PLUGIN = ReportsPlugin()
