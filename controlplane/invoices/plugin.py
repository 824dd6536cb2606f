"""Wires tenant invoices: the routes, the invoice job (a background loop; the job is idempotent,
so running it every hour invoices each period once, on its first run after the period ended)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from aiohttp import web

from controlplane.invoices import http
from controlplane.invoices.services import InvoiceServices
from controlplane.invoices.units import follow as units_follow
from controlplane.plugins import Context, NoAsteriskFiles

log = structlog.get_logger(__name__)
JOB_INTERVAL_S = 3600.0


@dataclass(frozen=True)
class InvoicesPlugin(NoAsteriskFiles):
    name: str = "invoices"
    package: str = "controlplane.invoices"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # contract tests only wire the routes
            return
        services = InvoiceServices(context.pool, context.signals.invoice_issued.send)
        app[http.invoice_services] = services

        async def job_loop() -> None:
            while True:
                try:
                    await services.run_job()
                except Exception:  # the next round retries; the job is idempotent
                    log.exception("invoices.job_failed")
                await asyncio.sleep(JOB_INTERVAL_S)

        context.background.append(context.once("invoices.job", job_loop))

        async def units() -> None:  # every daemon: each one's admission keeps its spend caps
            await units_follow(pool, context.signals.tenant_units_changed.send)

        pool = context.pool
        context.background.append(units)
        log.info("invoices.installed")


PLUGIN = InvoicesPlugin()
