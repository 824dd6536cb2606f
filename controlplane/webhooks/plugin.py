"""Wires webhooks into the daemon: the endpoint RPC and the delivery worker."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from controlplane.plugins import Context, NoAsteriskFiles
from controlplane.secret_box import SecretBox, secret_key
from controlplane.webhooks import http
from controlplane.webhooks.services import EndpointService
from controlplane.webhooks.settings import Settings
from controlplane.webhooks.worker import Worker

worker_key = web.AppKey("webhooks_worker", Worker)


@dataclass(frozen=True)
class WebhooksPlugin(NoAsteriskFiles):
    name: str = "webhooks"
    package: str = "controlplane.webhooks"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # the OpenAPI contract test only wires routes
            return
        settings = Settings.from_config(context.config)
        box = SecretBox(secret_key(context.config))
        app[http.service_key] = EndpointService(context.pool, settings, box)
        worker = Worker(pool=context.pool, settings=settings, box=box)
        app[worker_key] = worker
        context.background.append(context.once("webhooks.dispatch", worker.run))
        # Waiting work: events not yet fanned out, events whose lane deliveries are not all
        # recorded yet, stored deliveries not yet attempted, those due now.
        context.metrics.query_gauge(
            "controlplane_webhook_queue_depth", "Webhook work waiting, by state (undispatched events, "
            "events in the worker's lane, pending deliveries, deliveries ready to attempt).", ("state",),
            context.pool,
            "SELECT 'undispatched', count(*) FROM events WHERE position IS NULL"
            " UNION ALL SELECT 'lane', count(*) FROM events"
            " WHERE position > (SELECT position FROM webhook_cursor WHERE name = 'lane')"
            " UNION ALL SELECT 'pending', count(*) FROM webhook_deliveries"
            " WHERE status = 'PENDING' AND NOT manual"
            " UNION ALL SELECT 'ready', count(*) FROM webhook_deliveries WHERE ready")


PLUGIN = WebhooksPlugin()
