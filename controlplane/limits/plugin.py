"""Wires the limits capability: engine, FastAGI admission server, hooks, routes.

Asterisk learns where admission lives (and the fail policy) from astdb keys
``controlplane/admission`` and ``controlplane/admission_fail``, written over AMI
at start and after every reconnect: no dialplan re-render is needed to move the
server, and the keys survive an Asterisk restart.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from aiohttp import web

from controlplane.calls.plugin import recorder_key
from controlplane.calls.recorder import CallRecorder
from controlplane.limits import http, store
from controlplane.limits.agi import AgiServer
from controlplane.limits.engine import Engine
from controlplane.limits.services import LimitServices
from controlplane.plugins import Context
from controlplane.tenants.http import numbering_services, tenant_services

log = structlog.get_logger(__name__)
agi_key = web.AppKey("limits_agi", AgiServer)
STATUS_REFRESH_SECONDS = 5.0


@dataclass(frozen=True)
class LimitsPlugin:
    name: str = "limits"
    package: str = "controlplane.limits"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None or not context.config.limits.enabled:
            return
        cfg = context.config.limits
        pool, ami = context.pool, context.ami
        recorder = app.get(recorder_key) or CallRecorder(pool)
        engine = Engine(pool, recorder.billing, max_call_s=cfg.max_call_seconds)
        services = LimitServices(pool, engine)
        app[http.limit_services] = services
        server = AgiServer(engine.admit, cfg.agi_host, cfg.agi_port)
        app[agi_key] = server
        recorder.on_recorded.append(services.after_record)
        numbering = app.get(numbering_services)
        if numbering is not None:
            numbering.on_cap_tripped = services.count_cap_tripped
        tenants = app.get(tenant_services)
        if tenants is not None:
            async def suspend(partner_id: str, tenant_id: str, cause: str) -> None:
                await tenants.suspend_for(partner_id, tenant_id, cause)
            services.suspend = suspend
        if ami is not None:
            async def cut(channel: str, seconds: int) -> None:
                if seconds <= 0:
                    await ami.action({"Action": "Hangup", "Channel": channel, "Cause": "16"}, check=False)
                else:
                    await ami.action({"Action": "Setvar", "Channel": channel, "Variable": "TIMEOUT(absolute)",
                                      "Value": str(seconds)}, check=False)
            services.cut = cut

        async def publish() -> None:
            if ami is None:
                return
            await ami.wait_connected()
            address = f"agi://{cfg.agi_host}:{server.port}"
            for key, value in (("admission", address), ("admission_fail", "open" if cfg.fail_open else "closed")):
                await ami.action({"Action": "DBPut", "Family": "controlplane", "Key": key, "Val": value})
            log.info("limits.published", admission=address, fail_open=cfg.fail_open)

        async def serve() -> None:
            await engine.load_all()
            await server.start()
            await publish()
            await server.serve_forever()

        async def refresh_statuses() -> None:
            """Manual suspensions end calls in progress; reactivations are seen on the next call."""
            while True:
                await asyncio.sleep(STATUS_REFRESH_SECONDS)
                async with pool.acquire() as conn:
                    rows = await store.statuses(conn)
                for row in rows:
                    state = engine.tenants.get(row["id"])
                    if state is None or state.status == row["status"]:
                        continue
                    was_allowed, state.status = state.calls_allowed, row["status"]
                    if was_allowed and not state.calls_allowed:
                        await services.suspended(row["id"])

        context.background += [serve, engine.persist_forever, engine.expire_forever, refresh_statuses]
        context.resync.append(publish)
        log.info("limits.installed", agi_port=cfg.agi_port, fail_open=cfg.fail_open)


PLUGIN = LimitsPlugin()
