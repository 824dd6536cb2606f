"""Wires the numbers capability: services over the tenants applier, routes, the relay-call alert."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from controlplane.keystore import install_secret
from controlplane.numbers import http
from controlplane.numbers.alerts import record_relay_call
from controlplane.numbers.e911_services import E911Services
from controlplane.numbers.ports import PortServices
from controlplane.numbers.services import NumberServices
from controlplane.plugins import Context
from controlplane.config import Config
from controlplane.webhooks.secret_box import SecretBox
from e911.trunks import render_trunks

log = structlog.get_logger(__name__)


def asterisk_files(config: Config) -> dict[str, str]:
    """The emergency trunks from the ``emergency:`` config (PJSIP objects in pjsip_extra.conf)."""
    e = config.emergency
    text = render_trunks(e.trunk_host, e.trunk_port, e.relay_host, e.relay_port)
    return {"pjsip_extra.conf": text} if text else {}


def _applier(app: web.Application) -> Any:
    """The tenants plugin's applier (installed before us): one dialplan writer."""
    from controlplane.tenants.http import tenant_services

    services = app.get(tenant_services)
    return getattr(services, "applier", None)


@dataclass(frozen=True)
class NumbersPlugin:
    name: str = "numbers"
    package: str = "controlplane.numbers"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # contract tests only wire the routes
            return
        numbers = NumberServices(context.pool, _applier(app))
        app[http.number_services] = numbers
        app[http.e911_services] = E911Services(numbers)
        key = context.config.webhooks.secret_key or install_secret(context.config.data_path, "webhooks_key",
                                                                   nbytes=32)
        app[http.port_services] = PortServices(numbers, SecretBox(key))
        if context.ami is not None:
            pool = context.pool

            async def on_dial(event: Any) -> None:
                try:
                    await record_relay_call(pool, dict(event.headers))
                except Exception:
                    log.exception("e911.alert_failed")

            context.ami.on("DialBegin", on_dial)
        log.info("numbers.installed", applier=numbers.applier is not None)


PLUGIN = NumbersPlugin()
