"""Wires the calls capability: the call tracker (following Asterisk's event streams)
feeding the recorder, the reconciler, pickup of calls in progress on (re)connect, and
the RPC routes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from aiohttp import web

from cdr_ingest.callflow import FlowConfig
from controlplane.calls import http
from controlplane.calls.asterisk_files import cdr_files
from controlplane.calls.billing import wholesale_deck
from controlplane.calls.failover import failover_forever
from controlplane.calls.reconcile import pickup, reconcile_forever
from controlplane.calls.recorder import CallRecorder
from controlplane.calls.services import CallServices
from controlplane.calls.tracker import CallTracker
from controlplane.config import Config
from controlplane.metrics.families import call_recorded
from controlplane.metrics.readers import calls_in_progress
from controlplane.plugins import AsteriskSource, Context
from provisioning.names import FROM_CARRIER

log = structlog.get_logger(__name__)
tracker_key = web.AppKey("call_tracker", CallTracker)
recorder_key = web.AppKey("call_recorder", CallRecorder)

__all__ = ["PLUGIN", "flow_config"]


def flow_config(config: Config) -> FlowConfig:
    return FlowConfig(trunk=config.carrier.endpoint, inbound_context=FROM_CARRIER)


@dataclass(frozen=True)
class CallsPlugin:
    name: str = "calls"
    package: str = "controlplane.calls"

    async def asterisk_files(self, source: AsteriskSource) -> Mapping[str, str]:
        """CDRs into our database (when it is known) and the carrier trunk."""
        return cdr_files(source.config, source.dsn)

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # contract tests only wire the routes
            return
        cfg = context.config.calls
        recorder = CallRecorder(context.pool, wholesale_deck=wholesale_deck(context.config))
        recorder.on_recorded.append(context.signals.call_recorded.send)
        recorder.on_recorded.append(call_recorded)  # metrics: counts and hang-up -> record lag
        context.signals.pricing_changed.connect(lambda changed: recorder.forget(changed.tenant_id))
        app[recorder_key] = recorder
        tracker = CallTracker(flow=flow_config(context.config))
        tracker.attach(recorder.submit)
        app[tracker_key] = tracker
        context.ari_events.append(tracker.on_ari)
        context.ami_events.append(tracker.on_ami)
        context.metrics.gauge("controlplane_calls_in_progress",
                              "Calls in progress, by direction and call class.", ("direction", "call_class"),
                              lambda: calls_in_progress(tracker.flow))
        app[http.call_services] = CallServices(context.pool, recorder)
        pool, ami = context.pool, context.ami

        leases, node = context.leases, context.config.node.id

        async def reconcile() -> None:
            await reconcile_forever(pool, recorder, tracker, cfg.reconcile_seconds, cfg.settle_seconds,
                                    node_id=node if leases is not None else None)

        async def first_pickup() -> None:
            if ami is None:
                return
            await ami.wait_connected()
            await pickup(ami, tracker, pool)

        async def repickup() -> None:
            if ami is not None:
                await pickup(ami, tracker, pool)

        context.background += [recorder.run, context.once("calls.reconcile", reconcile), first_pickup]
        if leases is not None:  # several nodes: a dead node's calls in progress are recorded here
            holder = leases.name
            context.background.append(leases.once("calls.failover", lambda: failover_forever(
                pool, recorder, node, holder, cfg.reconcile_seconds)))
        context.resync.append(repickup)
        log.info("calls.installed", trunk=context.config.carrier.endpoint)


PLUGIN = CallsPlugin()
