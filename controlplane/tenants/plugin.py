"""Wires the tenants capability: services, routes, the applier's background jobs.

Sends ``tenant_status_changed`` and ``cap_tripped`` (extensions, the /v1/dids alias);
reacts to ``suspension_due`` (suspends the tenant, storing the cause), ``reactivation_due``
(reactivates it if that cause is still the stored one), ``dialplan_changed`` (the
applier re-renders: it is the one dialplan writer) and ``partner_status_changed`` (the
partner's tenants render from its status: re-rendered too)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog
from aiohttp import web

from controlplane.config import Config
from controlplane.limits.caps import announcer
from controlplane.plugins import AsteriskSource, Context
from controlplane.signals import DialplanChanged, PartnerStatusChanged
from controlplane.tenants import http
from controlplane.tenants.applier import AmiControl, Applier, render_current
from controlplane.tenants.numbering import NumberingServices
from controlplane.tenants.services import TenantServices
from provisioning.dialplan import AdmissionStep
from provisioning.realtime_conf import PgTarget, extconfig_conf, realtime_files, sorcery_conf

log = structlog.get_logger(__name__)
RECONCILE_SECONDS = 300.0
PURGE_SECONDS = 3600.0
DIALPLAN_FILE = "extensions_tenants.conf"


def asterisk_etc_dir(config: Config) -> Path | None:
    """Where the dialplan is written: the instance's etc directory its runner names
    (None for an external Asterisk without ``asterisk.config_dir``)."""
    from controlplane.asterisk.runner import runner_for

    etc = runner_for(config).etc_dir
    return Path(etc) if etc is not None else None


def asterisk_extra_files(dsn: str) -> dict[str, str]:
    """The files that make PJSIP read our tables (sorcery realtime into ``dsn``)."""
    return realtime_files(PgTarget.from_dsn(dsn))


@dataclass(frozen=True)
class TenantsPlugin:
    name: str = "tenants"
    package: str = "controlplane.tenants"

    async def asterisk_files(self, source: AsteriskSource) -> Mapping[str, str]:
        """Realtime sorcery into our database, and the tenant dialplan as the database says."""
        files = {"sorcery.conf": sorcery_conf(), "extconfig.conf": extconfig_conf()}
        if source.dsn is not None:
            files.update(asterisk_extra_files(source.dsn))
        if source.conn is not None:
            files[DIALPLAN_FILE] = await render_current(source.conn, trunk=source.config.carrier.endpoint,
                                                        admission=_admission(source.config))
        return files

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # contract tests only wire the routes
            return
        etc = asterisk_etc_dir(context.config)
        control = AmiControl(context.ami) if context.ami is not None else None
        applier = _applier(context.config, context.pool, etc / DIALPLAN_FILE if etc else None, control)
        signals = context.signals
        app[http.tenant_services] = tenants = TenantServices(context.pool, applier,
                                                             status_changed=signals.tenant_status_changed,
                                                             partner_created=signals.partner_created)
        app[http.numbering_services] = NumberingServices(context.pool, applier,
                                                         on_cap_tripped=announcer(signals.cap_tripped))
        signals.suspension_due.connect(tenants.suspension_due)
        signals.reactivation_due.connect(tenants.reactivation_due)
        signals.dialplan_changed.connect(lambda _: applier.dialplan_changed(announce=False))
        # Tenants' and extensions' changes are announced too: the flows capability re-renders the
        # tenants they touched, and with several nodes controlplane.cluster relays them. The
        # echo back to this applier lands in the same debounce window: still one reload.
        applier.announce = lambda: signals.dialplan_changed.send(DialplanChanged(self.name))

        async def partner_status_changed(change: PartnerStatusChanged) -> None:
            # Its tenants render from the partner's status too (provisioning.access): a suspended
            # partner's tenants are refused like suspended ones, emergency aside.
            log.info("tenants.partner_status_changed", partner_id=change.partner_id, status=change.status)
            applier.dialplan_changed()

        signals.partner_status_changed.connect(partner_status_changed)
        context.background.append(applier.run)
        context.background.append(lambda: applier.reconcile_forever(RECONCILE_SECONDS))
        context.background.append(context.once("tenants.purge", lambda: _purge_forever(tenants)))
        async def restore() -> None:
            await applier.restore()

        context.resync.append(restore)
        if control is not None:  # the first boot: the reconnect hook only covers later ones
            context.background.append(restore)
        log.info("tenants.installed", dialplan=str(etc / DIALPLAN_FILE) if etc else None,
                 asterisk_control=control is not None)


def _admission(config: Config) -> AdmissionStep:
    """The dialplan's admission step, as configured: for the daemon's writer and the rendered files."""
    return AdmissionStep.of(config.limits.enabled, config.limits.fail_open)


def _applier(config: Config, pool: asyncpg.Pool, dialplan_path: Path | None = None,
             control: AmiControl | None = None) -> Applier:
    """The one way the dialplan writer is built."""
    return Applier(pool, dialplan_path=dialplan_path, control=control,
                   trunk=config.carrier.endpoint, admission=_admission(config))


async def _purge_forever(services: TenantServices) -> None:
    """Scheduled job: tenants cancelled more than 90 days ago are purged."""
    import asyncio

    while True:
        purged = await services.purge_expired()
        if purged:
            log.info("tenants.purged", tenants=purged)
        await asyncio.sleep(PURGE_SECONDS)


PLUGIN = TenantsPlugin()
