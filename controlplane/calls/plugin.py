"""Wires the calls capability: the recorder fed by the daemon's call tracker, the
reconciler, pickup of calls in progress on (re)connect, and the RPC routes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web

from cdr_ingest.callflow import FlowConfig
from cdr_ingest.rates import RateDeck, load_deck_csv
from cdr_ingest.tracker import CallTracker
from controlplane.calls import http
from controlplane.calls.asterisk_files import cdr_files
from controlplane.calls.reconcile import pickup, reconcile_forever
from controlplane.calls.recorder import CallRecorder
from controlplane.calls.services import CallServices
from controlplane.config import Config
from controlplane.plugins import Context
from provisioning.names import FROM_CARRIER

log = structlog.get_logger(__name__)
tracker_key = web.AppKey("call_tracker", CallTracker)
recorder_key = web.AppKey("call_recorder", CallRecorder)
flow_key = web.AppKey("call_flow_config", FlowConfig)

__all__ = ["PLUGIN", "attach_tracker", "asterisk_files", "flow_config"]


def flow_config(config: Config) -> FlowConfig:
    return FlowConfig(trunk=config.carrier.endpoint, inbound_context=FROM_CARRIER)


def asterisk_files(config: Config, dsn: str) -> dict[str, str]:
    """Extra Asterisk files of this capability: cdr_pgsql into our database, the trunk."""
    return cdr_files(config, dsn)


def attach_tracker(app: web.Application, tracker: CallTracker) -> None:
    """The daemon's tracker feeds this capability's recorder (call before the jobs start)."""
    app[tracker_key] = tracker
    recorder = app.get(recorder_key)
    if recorder is not None:
        tracker.attach(recorder.submit, app.get(flow_key))


def _wholesale_deck(config: Config) -> RateDeck | None:
    path = config.calls.wholesale_deck
    return load_deck_csv(Path(path).read_text()) if path else None


@dataclass(frozen=True)
class CallsPlugin:
    name: str = "calls"
    package: str = "controlplane.calls"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # contract tests only wire the routes
            return
        cfg = context.config.calls
        recorder = CallRecorder(context.pool, wholesale_deck=_wholesale_deck(context.config))
        app[recorder_key] = recorder
        app[flow_key] = flow_config(context.config)
        app[http.call_services] = CallServices(context.pool, recorder)
        pool, ami = context.pool, context.ami

        async def reconcile() -> None:
            tracker = app[tracker_key]
            await reconcile_forever(pool, recorder, tracker, cfg.reconcile_seconds, cfg.settle_seconds)

        async def first_pickup() -> None:
            if ami is None:
                return
            await ami.wait_connected()
            await pickup(ami, app[tracker_key], pool)

        async def repickup() -> None:
            if ami is not None and tracker_key in app:
                await pickup(ami, app[tracker_key], pool)

        context.background += [recorder.run, reconcile, first_pickup]
        context.resync.append(repickup)
        log.info("calls.installed", trunk=context.config.carrier.endpoint)


PLUGIN = CallsPlugin()
