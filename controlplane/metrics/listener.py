"""GET /metrics on a listener of its own (``metrics.host``/``metrics.port``).

Unauthenticated by design: Prometheus scrapes it, and it shows counts and states only
(no tenant, partner or call ids). Keep it on loopback or a private network.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from controlplane.metrics.live import Metrics

metrics_key = web.AppKey("metrics", Metrics)


async def _scrape(request: web.Request) -> web.Response:
    body = await request.app[metrics_key].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def start_listener(metrics: Metrics, host: str, port: int) -> web.AppRunner:
    app = web.Application()
    app[metrics_key] = metrics
    app.router.add_get("/metrics", _scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
