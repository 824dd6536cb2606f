"""Wires ring groups: routes, and their section of each tenant's flows context (rg-<id>)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from controlplane.plugins import Context, NoAsteriskFiles
from controlplane.ring_groups import http, store
from controlplane.ring_groups.models import render_ring_group
from controlplane.ring_groups.services import RingGroupServices
from provisioning.destinations import Destination, DestinationKind


class RingGroupSection:
    """``FlowSection`` of the ring_group kind."""

    @property
    def kinds(self) -> frozenset[DestinationKind]:
        return frozenset({DestinationKind.RING_GROUP})

    async def exists(self, conn: asyncpg.Connection, tenant_id: str, destination: Destination) -> bool:
        return destination.kind is DestinationKind.RING_GROUP and await store.exists(conn, tenant_id,
                                                                                     destination.ref)

    async def render(self, conn: asyncpg.Connection, tenant_ids: Sequence[str]) -> Mapping[str, Sequence[str]]:
        out: dict[str, list[str]] = {}
        for tenant_id, row in await store.rows_for(conn, tenant_ids):
            out.setdefault(tenant_id, []).extend(render_ring_group(row))
        return out


@dataclass(frozen=True)
class RingGroupsPlugin(NoAsteriskFiles):
    name: str = "ring_groups"
    package: str = "controlplane.ring_groups"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # the contract test only wires routes
            return
        context.flow_sections.append(RingGroupSection())
        app[http.services_key] = RingGroupServices(context.pool, lambda: context.destinations,
                                                   context.signals.tenant_flows_changed)


PLUGIN = RingGroupsPlugin()
