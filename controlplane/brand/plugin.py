"""Wires the brand capability: the company, brand, logo and notification routes."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from controlplane.brand import http
from controlplane.brand.services import BrandServices
from controlplane.plugins import Context, NoAsteriskFiles


@dataclass(frozen=True)
class BrandPlugin(NoAsteriskFiles):
    name: str = "brand"
    package: str = "controlplane.brand"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is not None:  # the OpenAPI contract test only wires routes
            app[http.brand_services] = BrandServices(context.pool)


PLUGIN = BrandPlugin()
