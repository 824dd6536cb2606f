"""Wires collection: its routes, the charge of every issued invoice (``signals.invoice_issued``)
and the sweeper that finishes charges a crash left open."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from aiohttp import web

from controlplane.collection import charges, http
from controlplane.collection.providers import Resolver
from controlplane.collection.refunds import Refunds
from controlplane.collection.services import Collection
from controlplane.plugins import Context, NoAsteriskFiles
from controlplane.signals import InvoiceIssued, Signals

log = structlog.get_logger(__name__)
SWEEP_SECONDS = 60.0
# A charge untouched this long was left open by a crash (a live one finishes in seconds).
STALE = timedelta(minutes=2)


@dataclass(frozen=True)
class Collector:
    pool: asyncpg.Pool
    resolver: Resolver
    signals: Signals
    refunds: Refunds

    async def invoice_issued(self, issued: InvoiceIssued) -> None:
        outcome = await charges.collect(self.pool, self.resolver, self.signals, invoice_id=issued.invoice_id,
                                        attempt=1)
        log.info("collection.invoice_collected", invoice_id=issued.invoice_id, status=outcome.status,
                 code=outcome.code)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await charges.sweep(self.pool, self.resolver, self.signals, datetime.now(UTC) - STALE)
                await self.refunds.resume_stale(datetime.now(UTC) - STALE)
            except Exception:
                log.exception("collection.sweep_failed")


@dataclass(frozen=True)
class CollectionPlugin(NoAsteriskFiles):
    name: str = "collection"
    package: str = "controlplane.collection"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # the contract test only wires routes
            return
        resolver = Resolver.from_config(context.config)
        app[http.services_key] = Collection(context.pool, resolver, context.signals)
        refunds = Refunds(context.pool, resolver)
        app[http.refunds_key] = refunds
        collector = Collector(context.pool, resolver, context.signals, refunds)
        context.signals.invoice_issued.connect(collector.invoice_issued)
        context.background.append(context.once("collection", collector.run))


PLUGIN = CollectionPlugin()
