"""Wires billing profiles: the routes, and the default profiles of each new partner
(``partner_created``, in the partner's transaction)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiohttp import web

from controlplane.plugins import Context, NoAsteriskFiles
from controlplane.profiles import http
from controlplane.profiles.services import ProfileServices
from controlplane.signals import PartnerCreated


@dataclass(frozen=True)
class ProfilesPlugin(NoAsteriskFiles):
    name: str = "profiles"
    package: str = "controlplane.profiles"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # the OpenAPI contract test only wires routes
            return
        services = ProfileServices(context.pool, pricing_changed=context.signals.pricing_changed)
        app[http.profile_services] = services

        async def partner_created(conn: asyncpg.Connection, created: PartnerCreated) -> None:
            await services.partner_created(conn, created.partner_id)

        context.signals.partner_created.connect(partner_created)


PLUGIN = ProfilesPlugin()
