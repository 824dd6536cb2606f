"""Wires the dunning capability: the settings routes, the dunning job (every ``INTERVAL_S``, on the
wall clock) and the ``invoice_paid`` reaction; sends ``suspension_due`` and ``reactivation_due``
(the tenants capability suspends and reactivates, storing the cause)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog
from aiohttp import web

from controlplane.dunning import http
from controlplane.dunning.jobs import INTERVAL_S, Collect, invoice_paid, run_dunning
from controlplane.dunning.retries import retrier
from controlplane.dunning.services import DunningServices
from controlplane.plugins import Context, NoAsteriskFiles
from controlplane.signals import InvoicePaid, Signals

log = structlog.get_logger(__name__)


async def _forever(pool: asyncpg.Pool, signals: Signals, collect: Collect | None) -> None:
    while True:
        try:
            await run_dunning(pool, signals, datetime.now(UTC), collect)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dunning.job_failed")
        await asyncio.sleep(INTERVAL_S)


@dataclass(frozen=True)
class DunningPlugin(NoAsteriskFiles):
    name: str = "dunning"
    package: str = "controlplane.dunning"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # contract tests only wire the routes
            return
        pool, signals = context.pool, context.signals
        app[http.dunning_services] = DunningServices(pool)
        collect = retrier(pool, context.config, signals)

        async def paid(event: InvoicePaid) -> None:
            await invoice_paid(pool, signals, event)

        signals.invoice_paid.connect(paid)
        context.background.append(context.once("dunning", lambda: _forever(pool, signals, collect)))
        log.info("dunning.installed")


PLUGIN = DunningPlugin()
