"""Wires the tenants capability: services, routes, the applier's background jobs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web

from controlplane.config import Config
from controlplane.plugins import Context
from controlplane.tenants import http
from controlplane.tenants.applier import AmiControl, Applier
from controlplane.tenants.numbering import NumberingServices
from controlplane.tenants.services import TenantServices
from provisioning.realtime_conf import PgTarget, realtime_files

log = structlog.get_logger(__name__)
RECONCILE_SECONDS = 300.0
PURGE_SECONDS = 3600.0
DIALPLAN_FILE = "extensions_tenants.conf"


def asterisk_etc_dir(config: Config) -> Path | None:
    """The running instance's config directory, from the runner when it is installed."""
    try:
        from controlplane.asterisk.runner import runner_for  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    runner = runner_for(config)
    for attribute in ("etc_dir", "instance_etc"):
        path = getattr(runner, attribute, None)
        if path is not None:
            return Path(path)
    instance_dir = getattr(runner, "instance_dir", None)
    return Path(instance_dir) / "etc" if instance_dir is not None else None


def asterisk_extra_files(dsn: str) -> dict[str, str]:
    """The files the runner drops beside the base config so PJSIP reads our tables."""
    return realtime_files(PgTarget.from_dsn(dsn))


@dataclass(frozen=True)
class TenantsPlugin:
    name: str = "tenants"
    package: str = "controlplane.tenants"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # contract tests only wire the routes
            return
        etc = asterisk_etc_dir(context.config)
        control = AmiControl(context.ami) if context.ami is not None else None
        applier = Applier(context.pool, dialplan_path=etc / DIALPLAN_FILE if etc else None, control=control,
                          trunk=context.config.carrier.endpoint)
        app[http.tenant_services] = tenants = TenantServices(context.pool, applier)
        app[http.numbering_services] = NumberingServices(context.pool, applier)
        context.background.append(applier.run)
        context.background.append(lambda: applier.reconcile_forever(RECONCILE_SECONDS))
        context.background.append(lambda: _purge_forever(tenants))
        context.resync.append(applier.restore)
        if control is not None:  # the first boot: the reconnect hook only covers later ones
            context.background.append(applier.restore)
        log.info("tenants.installed", dialplan=str(etc / DIALPLAN_FILE) if etc else None,
                 asterisk_control=control is not None)


async def _purge_forever(services: TenantServices) -> None:
    """Scheduled job: tenants cancelled more than 90 days ago are purged."""
    import asyncio

    while True:
        purged = await services.purge_expired()
        if purged:
            log.info("tenants.purged", tenants=purged)
        await asyncio.sleep(PURGE_SECONDS)


PLUGIN = TenantsPlugin()
