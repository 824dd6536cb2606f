"""Wires queues: routes, their section of the flows context (q-<id>), the realtime tables
Asterisk reads them from, and the follower of app_queue's AMI events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from controlplane.plugins import AsteriskSource, Context
from controlplane.queues import http, store
from controlplane.queues.models import render_queue
from controlplane.queues.services import QueueEventFollower, QueueServices
from provisioning.destinations import Destination, DestinationKind

# Appended to the tenants plugin's extconfig.conf (same [settings] section: files of one
# name are concatenated in plugin order): app_queue reads queues and members live.
EXTCONFIG = ("queues => pgsql,general,queues\n"
             "queue_members => pgsql,general,queue_members\n")
# app_queue declines to load without a queues.conf. Every queue is realtime: none here.
QUEUES_CONF = ("; Rendered by the control plane: every queue comes from realtime (docs/queues.md).\n"
               "[general]\n"
               "persistentmembers = no ; members are the database's, never astdb's\n"
               "autofill = yes ; waiting callers are offered to free members in parallel\n"
               "shared_lastcall = yes\n"
               "log_membername_as_agent = yes\n")


class QueueSection:
    """``FlowSection`` of the queue kind."""

    @property
    def kinds(self) -> frozenset[DestinationKind]:
        return frozenset({DestinationKind.QUEUE})

    async def exists(self, conn: asyncpg.Connection, tenant_id: str, destination: Destination) -> bool:
        return destination.kind is DestinationKind.QUEUE and await store.exists(conn, tenant_id, destination.ref)

    async def render(self, conn: asyncpg.Connection, tenant_ids: Sequence[str]) -> Mapping[str, Sequence[str]]:
        out: dict[str, list[str]] = {}
        for tenant_id, row in await store.rows_for(conn, tenant_ids):
            out.setdefault(tenant_id, []).extend(render_queue(row))
        return out


@dataclass(frozen=True)
class QueuesPlugin:
    name: str = "queues"
    package: str = "controlplane.queues"

    async def asterisk_files(self, source: AsteriskSource) -> Mapping[str, str]:
        return {"extconfig.conf": EXTCONFIG, "queues.conf": QUEUES_CONF}

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # the contract test only wires routes
            return
        context.flow_sections.append(QueueSection())
        context.ami_events.append(QueueEventFollower(context.pool))
        app[http.services_key] = QueueServices(context.pool, lambda: context.destinations,
                                               context.signals.tenant_flows_changed)


PLUGIN = QueuesPlugin()
