"""Wires the wallet: its routes, the follower of balance changes (auto-recharge, the
low-balance warning, ``signals.wallet_changed``) and its reaction to payment methods."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from aiohttp import web

from controlplane.plugins import Context, NoAsteriskFiles
from controlplane.wallet import http
from controlplane.wallet.follower import WalletFollower
from controlplane.wallet.services import WalletServices

log = structlog.get_logger(__name__)
follower_key = web.AppKey("wallet_follower", WalletFollower)

__all__ = ["PLUGIN", "follower_key"]


@dataclass(frozen=True)
class WalletPlugin(NoAsteriskFiles):
    name: str = "wallet"
    package: str = "controlplane.wallet"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # contract tests only wire the routes
            return
        services = WalletServices(context.pool, context.payments, context.config.wallet)
        follower = WalletFollower(context.pool, services, context.signals.wallet_changed.send,
                                  sweep_seconds=context.config.wallet.sweep_seconds)
        services.poke = follower.poke
        app[http.wallet_services] = services
        app[follower_key] = follower
        context.signals.payment_methods_changed.connect(services.payment_methods_changed)
        context.background.append(follower.run)
        log.info("wallet.installed")


PLUGIN = WalletPlugin()
