"""Wires the team: its routes, and the acting-user resolver the HTTP guard consults."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from controlplane.http.middleware import acting_users
from controlplane.mail.store import enqueue
from controlplane.plugins import Context, NoAsteriskFiles
from controlplane.team import http
from controlplane.team.acting import ActingUserCache
from controlplane.team.services import TeamServices


@dataclass(frozen=True)
class TeamPlugin(NoAsteriskFiles):
    name: str = "team"
    package: str = "controlplane.team"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # the contract test only wires routes
            return
        cache = ActingUserCache(context.pool, ttl=context.config.team.acting_user_cache_seconds)
        app[acting_users] = cache
        app[http.services_key] = TeamServices(context.pool, enqueue=enqueue,
                                              invitation_url=context.config.team.invitation_url,
                                              on_change=cache.forget)


PLUGIN = TeamPlugin()
