"""Wires the nodes capability: the platform routes, and the edge sync (once per deployment)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from controlplane.nodes import http
from controlplane.nodes.services import EdgeRpc, EdgeSync, NodeServices
from controlplane.plugins import Context, NoAsteriskFiles


@dataclass(frozen=True)
class NodesPlugin(NoAsteriskFiles):
    name: str = "nodes"
    package: str = "controlplane.nodes"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # the OpenAPI contract test only wires routes
            return
        rpc = context.config.node.edge_rpc
        services = NodeServices(context.pool, EdgeRpc(rpc) if rpc else None)
        app[http.node_services] = services
        if rpc:
            # One daemon keeps the edge in sync (a lease): pins new tenants, reloads on change.
            context.background.append(context.once("nodes.edge_sync", EdgeSync(services).run))


PLUGIN = NodesPlugin()
