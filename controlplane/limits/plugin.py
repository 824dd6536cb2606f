"""Wires the limits capability: engine, FastAGI admission server, reactions, routes.

Reacts to ``call_recorded`` (usage, alerts, auto-suspension), ``tenant_status_changed``
(admission follows at once; a suspension ends calls in progress), ``cap_tripped``,
``wallet_changed`` (the balance admission holds calls against) and
``partner_status_changed`` (a trial's limits; a suspended partner's calls end);
sends ``suspension_due`` (the tenants capability suspends). There is no status poll:
tenants' services are the only writer of a tenant's status and always send the signal.

Asterisk learns where admission lives from the astdb key ``controlplane/admission``,
written over AMI at start and after every reconnect: no dialplan re-render is needed
to move the server, and the key survives an Asterisk restart. Whether there is an
admission step at all, and its fail policy, are in the rendered dialplan (config
``limits.enabled`` / ``limits.fail_open``, provisioning.dialplan.AdmissionStep): a
missing key is "unreachable", never "no admission". Keys the dialplan no longer
reads, or that a daemon with limits disabled must not leave behind, are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from aiohttp import web

from controlplane.asterisk.ami import AmiClient
from controlplane.calls.billing import BillingContexts, wholesale_deck
from controlplane.limits import http
from controlplane.limits.agi import AgiServer
from controlplane.limits.engine import Engine
from controlplane.limits.services import CutCall, LimitServices
from controlplane.limits.shared_wallet import SharedWallet
from controlplane.plugins import Context, NoAsteriskFiles
from controlplane.signals import SuspensionDue

log = structlog.get_logger(__name__)
agi_key = web.AppKey("limits_agi", AgiServer)


@dataclass(frozen=True)
class LimitsPlugin(NoAsteriskFiles):
    name: str = "limits"
    package: str = "controlplane.limits"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:
            return
        if not context.config.limits.enabled:
            ami_off = context.ami
            if ami_off is not None:  # no admission step is rendered; stale keys go too
                async def unpublish() -> None:
                    await ami_off.wait_connected()
                    await _delete_keys(ami_off, ("admission", "admission_fail"))
                context.background.append(unpublish)
                context.resync.append(unpublish)
            return
        cfg = context.config.limits
        pool, ami = context.pool, context.ami
        signals = context.signals
        engine = Engine(pool, BillingContexts(wholesale_deck=wholesale_deck(context.config)),
                        max_call_s=cfg.max_call_seconds)

        async def suspend(partner_id: str, tenant_id: str, cause: str) -> None:
            await signals.suspension_due.send(SuspensionDue(partner_id, tenant_id, cause))

        services = LimitServices(pool, engine, suspend=suspend, cut=_cutter(ami) if ami is not None else None)
        app[http.limit_services] = services
        # Several nodes: a partner's wallet is held across them (controlplane.limits.shared_wallet).
        admit = SharedWallet(pool, engine, context.config.node.id).admit if context.config.node.multi \
            else engine.admit
        server = AgiServer(admit, cfg.agi_host, cfg.agi_port)
        app[agi_key] = server
        signals.call_recorded.connect(services.after_record)
        signals.tenant_status_changed.connect(services.status_changed)
        signals.cap_tripped.connect(services.cap_tripped)
        signals.wallet_changed.connect(services.wallet_changed)
        signals.tenant_units_changed.connect(services.units_changed)
        signals.partner_status_changed.connect(services.partner_status_changed)

        async def publish() -> None:
            if ami is None:
                return
            await ami.wait_connected()
            address = f"agi://{cfg.agi_host}:{server.port}"
            await ami.action({"Action": "DBPut", "Family": "controlplane", "Key": "admission", "Val": address})
            await _delete_keys(ami, ("admission_fail",))  # the fail policy is rendered in the dialplan now
            log.info("limits.published", admission=address, fail_open=cfg.fail_open)

        async def serve() -> None:
            await engine.load_all()
            await server.start()
            await publish()
            await server.serve_forever()

        context.background += [serve, engine.persist_forever, engine.expire_forever]
        context.resync.append(publish)
        log.info("limits.installed", agi_port=cfg.agi_port, fail_open=cfg.fail_open)


def _cutter(ami: AmiClient) -> CutCall:
    async def cut(channel: str, seconds: int) -> None:
        if seconds <= 0:
            await ami.action({"Action": "Hangup", "Channel": channel, "Cause": "16"}, check=False)
        else:
            await ami.action({"Action": "Setvar", "Channel": channel, "Variable": "TIMEOUT(absolute)",
                              "Value": str(seconds)}, check=False)
    return cut


async def _delete_keys(ami: AmiClient, keys: tuple[str, ...]) -> None:
    """DBDel each ``controlplane/<key>``; one that is not there is fine."""
    for key in keys:
        await ami.action({"Action": "DBDel", "Family": "controlplane", "Key": key}, check=False)
    log.info("limits.keys_deleted", keys=list(keys))


PLUGIN = LimitsPlugin()
