"""Request bodies, query instants and JSON responses shared by the plugins' handlers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from controlplane.http.problems import Problem

B = TypeVar("B")
_AT = re.compile(r"^(.*) - at `\$\.?([^`]*)`$")
_NAMED = re.compile(r"^Object (?:missing required|contains unknown) field `([^`]*)`")


def parse_instant(value: str | None, field: str) -> datetime | None:
    """An RFC 3339 instant from a query parameter (UTC), None when absent; a 422 naming it otherwise."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Problem(422, f"{field} must be an RFC 3339 instant", field=field) from None
    if moment.tzinfo is None:
        raise Problem(422, f"{field} needs a time zone (e.g. Z)", field=field)
    return moment.astimezone(UTC)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json",
                        headers=headers)


async def read_body(request: web.Request, kind: type[B]) -> B:
    """The body decoded as ``kind``; a 422 naming the field at fault otherwise."""
    raw = await request.read()
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        message, path = str(exc), ""
        match = _AT.match(message)
        if match:
            message, path = match[1], match[2]
        named = _NAMED.match(message)
        if named:
            path = f"{path}.{named[1]}" if path else named[1]
        field = re.sub(r"\[\d+\]$", "", path) or "body"
        raise Problem(422, f"{path or 'body'}: {message}", field=field) from None
    except msgspec.DecodeError:
        raise Problem(422, "the body must be a JSON object", field="body") from None
