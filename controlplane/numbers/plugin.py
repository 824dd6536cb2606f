"""Wires the numbers capability: services, routes, the relay-call alert; sends
``dialplan_changed`` and ``cap_tripped`` (every DID route trips max_dids the same way)."""

from __future__ import annotations

from collections.abc import Mapping
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
from controlplane.limits.caps import announcer
from controlplane.plugins import AsteriskSource, Context
from controlplane.secret_box import SecretBox
from controlplane.signals import DialplanSignal
from controlplane.config import Config
from e911.trunks import render_trunks

log = structlog.get_logger(__name__)
EMERGENCY_FILE = "pjsip_extra.conf"  # #tryinclude-d by pjsip.conf; shared with tests' own objects


def asterisk_files(config: Config) -> dict[str, str]:
    """The emergency trunks from the ``emergency:`` config (PJSIP objects in pjsip_extra.conf)."""
    e = config.emergency
    text = render_trunks(e.trunk_host, e.trunk_port, e.relay_host, e.relay_port)
    return {EMERGENCY_FILE: text} if text else {}


@dataclass(frozen=True)
class NumbersPlugin:
    name: str = "numbers"
    package: str = "controlplane.numbers"

    async def asterisk_files(self, source: AsteriskSource) -> Mapping[str, str]:
        return asterisk_files(source.config)

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # contract tests only wire the routes
            return
        signals = context.signals
        numbers = NumberServices(context.pool, DialplanSignal(signals.dialplan_changed, by=self.name),
                                 on_cap_tripped=announcer(signals.cap_tripped), payments=context.payments)
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
        log.info("numbers.installed")


PLUGIN = NumbersPlugin()
