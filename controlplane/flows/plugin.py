"""Wires the flows capability: the destinations registry (``Context.destinations``), its own
section (IVRs, time conditions, external numbers, hangup, DID entries), the routes, and the
flows applier that re-renders one tenant's ``<prefix>-flows`` context on ``tenant_flows_changed``
(and every tenant's after an Asterisk restart)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web

from controlplane.flows import http
from controlplane.flows.applier import FlowsApplier, flows_file, render_contexts
from controlplane.flows.registry import FlowDestinations
from controlplane.flows.section import FlowsSection
from controlplane.flows.services import FlowServices
from controlplane.plugins import AsteriskSource, Context
from controlplane.signals import TenantFlowsChanged
from provisioning.destinations import flows_context
from provisioning.flow_compile import render_file

log = structlog.get_logger(__name__)


def _etc_dir(context: Context) -> Path | None:
    from controlplane.asterisk.runner import runner_for

    etc = runner_for(context.config).etc_dir
    return Path(etc) if etc is not None else None


@dataclass
class FlowsPlugin:
    name: str = "flows"
    package: str = "controlplane.flows"
    # The sections of the daemon's Context (set in install): files rendered at an Asterisk start
    # include every capability's lines. Without a Context (the CLI), only this capability's own.
    _context: Context | None = None

    async def asterisk_files(self, source: AsteriskSource) -> Mapping[str, str]:
        if source.conn is None:
            return {}
        sections = self._context.flow_sections if self._context is not None else [
            FlowsSection([], lambda: None)]
        rendered = await render_contexts(source.conn, sections, None)
        return {flows_file(prefix): render_file(flows_context(prefix), compiled, "Rendered by the control plane.")
                for prefix, compiled in rendered.values()}

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        self._context = context
        context.destinations = FlowDestinations(context.flow_sections)
        context.flow_sections.append(FlowsSection(context.flow_sections, lambda: context.media))
        if context.pool is None:  # contract tests only wire the routes
            return
        applier = FlowsApplier(context.pool, context.flow_sections, etc_dir=_etc_dir(context), ami=context.ami)
        app[applier_key] = applier
        app[http.services_key] = FlowServices(context.pool, lambda: context.destinations,
                                              context.signals.tenant_flows_changed, lambda: context.media)

        def changed(change: TenantFlowsChanged) -> None:
            applier.changed(change.tenant_id)

        context.signals.tenant_flows_changed.connect(changed)
        # DIDs assigned or released and extensions added (the numbers and tenants capabilities):
        # every tenant's DID entries and extension fallbacks are re-rendered, differences applied.
        context.signals.dialplan_changed.connect(lambda _: applier.changed_all())
        context.background.append(applier.run)

        async def restore() -> None:
            await applier.restore()

        context.resync.append(restore)
        if context.ami is not None:  # the first boot: the reconnect hook only covers later ones
            context.background.append(restore)
        log.info("flows.installed", etc_dir=str(applier.etc_dir) if applier.etc_dir else None)


applier_key = web.AppKey("flows_applier", FlowsApplier)
PLUGIN = FlowsPlugin()
