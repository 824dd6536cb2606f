"""Path parameters of the tenant-scoped routes, and the audio download they share.

An id of the wrong shape names nothing this API holds, so it is a 404 (never a 422, never a
query with a malformed value) before the services are asked.
"""

from __future__ import annotations

import re

from aiohttp import web

from controlplane.http.problems import Problem

ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def path_id(request: web.Request, name: str, shape: re.Pattern[str] = ID, what: str | None = None) -> str:
    """The path parameter ``name`` when it has ``shape``; else 404 "no such <what>" (``what``
    defaults to ``name`` without its ``_id``)."""
    value = request.match_info[name]
    if not shape.fullmatch(value):
        raise Problem(404, f"no such {what or name.removesuffix('_id')}", code="not_found")
    return value


def tenant_id(request: web.Request) -> str:
    return path_id(request, "tenant_id")


def wav_download(data: bytes, filename: str) -> web.Response:
    return web.Response(body=data, content_type="audio/wav",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
