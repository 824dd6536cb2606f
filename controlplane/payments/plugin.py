"""Wires payments: the payment-method routes on the platform's provider (``Context.payments``)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from controlplane.payments import http
from controlplane.payments.services import PaymentMethods
from controlplane.plugins import Context, NoAsteriskFiles


@dataclass(frozen=True)
class PaymentsPlugin(NoAsteriskFiles):
    name: str = "payments"
    package: str = "controlplane.payments"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # the contract test only wires routes
            return
        app[http.services_key] = PaymentMethods(context.pool, context.payments, context.signals)


PLUGIN = PaymentsPlugin()
