"""Wires invoice delivery: its routes, and the invoice mail on ``signals.invoice_issued``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from aiohttp import web

from controlplane.invoice_delivery import http
from controlplane.invoice_delivery.services import DeliveryServices
from controlplane.plugins import Context, NoAsteriskFiles
from controlplane.signals import InvoiceIssued

log = structlog.get_logger(__name__)
CATCH_UP_SECONDS = 300.0


@dataclass(frozen=True)
class InvoiceDeliveryPlugin(NoAsteriskFiles):
    name: str = "invoice_delivery"
    package: str = "controlplane.invoice_delivery"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # the OpenAPI contract test only wires routes
            return
        services = DeliveryServices(context.pool)
        app[http.delivery_services] = services

        async def mail_issued(issued: InvoiceIssued) -> None:
            await services.deliver(issued.invoice_id)

        context.signals.invoice_issued.connect(mail_issued)

        async def catch_up() -> None:
            while True:
                try:
                    await services.catch_up()
                except Exception:  # noqa: BLE001 - the next round retries
                    log.exception("invoice_delivery.catch_up_round_failed")
                await asyncio.sleep(CATCH_UP_SECONDS)

        context.background.append(context.once("invoice_delivery.catch_up", catch_up))


PLUGIN = InvoiceDeliveryPlugin()
