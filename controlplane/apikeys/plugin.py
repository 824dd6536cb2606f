"""Wires API keys: the management routes and the authenticator the middleware consults."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from controlplane.apikeys import http
from controlplane.apikeys.auth import KeyAuthenticator
from controlplane.apikeys.services import KeyServices
from controlplane.http.middleware import key_authenticator
from controlplane.plugins import Context, NoAsteriskFiles


@dataclass(frozen=True)
class ApiKeysPlugin(NoAsteriskFiles):
    name: str = "apikeys"
    package: str = "controlplane.apikeys"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # the contract test only wires routes
            return
        authenticator = KeyAuthenticator(context.pool)
        app[key_authenticator] = authenticator
        app[http.services_key] = KeyServices(context.pool, on_change=authenticator.forget)


PLUGIN = ApiKeysPlugin()
