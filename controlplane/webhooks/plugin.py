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
        context.background.append(worker.run)


PLUGIN = WebhooksPlugin()
