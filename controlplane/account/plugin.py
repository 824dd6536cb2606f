"""Wires the account capability: services, routes, the cycle job and the trial-expiry job; sends
``partner_status_changed`` (activation, trial end) after commit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from aiohttp import web

from controlplane.account import http
from controlplane.account.jobs import run_cycle, run_trial_expiry
from controlplane.account.services import AccountServices
from controlplane.plugins import Context, NoAsteriskFiles

log = structlog.get_logger(__name__)


async def every(seconds: float, job: Callable[[datetime], Awaitable[object]], name: str) -> None:
    """Run ``job(now)`` forever, ``seconds`` apart; a failed run is logged and the next one comes."""
    while True:
        try:
            await job(datetime.now(UTC))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("account.job_failed", job=name)
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class AccountPlugin(NoAsteriskFiles):
    name: str = "account"
    package: str = "controlplane.account"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # contract tests only wire the routes
            return
        pool, payments, config = context.pool, context.payments, context.config.account
        signal = context.signals.partner_status_changed
        app[http.account_services] = AccountServices(pool, payments, signal, config.initial_wallet_credit_micros)

        async def cycle(now: datetime) -> None:
            report = await run_cycle(pool, payments, now)
            if report.unit_entries or report.fees_charged or report.fees_failed or report.errors:
                log.info("account.cycle", partners=report.partners, unit_entries=report.unit_entries,
                         unit_micros=report.unit_micros, fees_charged=report.fees_charged,
                         fees_failed=report.fees_failed, errors=len(report.errors))

        async def trials(now: datetime) -> None:
            await run_trial_expiry(pool, signal, now)

        context.background.append(context.once("account.cycle", lambda: every(config.unit_fee_interval_s, cycle, "cycle")))
        context.background.append(context.once("account.trial_expiry",
                                               lambda: every(config.trial_expiry_interval_s, trials,
                                                             "trial_expiry")))
        log.info("account.installed")


PLUGIN = AccountPlugin()
