"""Wires music on hold: routes, and the realtime tables res_musiconhold reads classes from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from controlplane.moh import http
from controlplane.moh.services import MohServices
from controlplane.plugins import AsteriskSource, Context

# Appended to extconfig.conf's [settings] (files of one name are concatenated in plugin order).
EXTCONFIG = ("musiconhold => pgsql,general,musiconhold\n"
             "musiconhold_entry => pgsql,general,musiconhold_entry\n")


@dataclass(frozen=True)
class MohPlugin:
    name: str = "moh"
    package: str = "controlplane.moh"

    async def asterisk_files(self, source: AsteriskSource) -> Mapping[str, str]:
        return {"extconfig.conf": EXTCONFIG}

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # the contract test only wires routes
            return
        media = context.config.media
        app[http.services_key] = MohServices(context.pool, lambda: context.media, max_bytes=media.max_upload_bytes,
                                             max_seconds=media.max_upload_seconds)


PLUGIN = MohPlugin()
