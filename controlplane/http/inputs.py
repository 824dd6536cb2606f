"""One rule for every request's text: no control characters in query, path or JSON strings.

PostgreSQL cannot store NUL (asyncpg raises mid-query), and a newline or other control
character has no place in a name, number, address or filter this API takes: every text
value is single-line. Checked here, once, before any handler runs (so before a streamed
export sends its headers), with a 422 naming the parameter or the JSON field.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from controlplane.http.middleware import Handler
from controlplane.http.problems import Problem

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_JSON_TYPES = ("application/json", "application/problem+json", "application/merge-patch+json")


def control_character(text: str) -> str | None:
    """A readable name of the first control character in ``text``; None when there is none."""
    match = _CONTROL.search(text)
    if match is None:
        return None
    return {"\x00": "NUL", "\n": "a newline", "\r": "a carriage return", "\t": "a tab"}.get(
        match[0], f"control character U+{ord(match[0]):04X}")


def _refuse(field: str, what: str, where: str) -> Problem:
    return Problem(422, f"{field}: {what} is not allowed in {where}", field=field, code="control_character")


def check_query_and_path(request: web.Request) -> None:
    for name, value in request.match_info.items():
        what = control_character(value)
        if what is not None:
            raise _refuse(name, what, "a path parameter")
    for name, value in request.query.items():
        what = control_character(name) or control_character(value)
        if what is not None:
            raise _refuse(name, what, "a query parameter")


def _walk(value: Any, path: str) -> tuple[str, str] | None:
    """(field, what) of the first string (or object key) holding a control character."""
    if isinstance(value, str):
        what = control_character(value)
        return (path or "body", what) if what is not None else None
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            what = control_character(str(key))
            if what is not None:
                return child, what
            found = _walk(item, child)
            if found is not None:
                return found
    elif isinstance(value, list):
        for item in value:  # fields are named without the index, as read_body does
            found = _walk(item, path)
            if found is not None:
                return found
    return None


async def check_body(request: web.Request) -> None:
    if not request.can_read_body:
        return
    if request.content_type.startswith("audio/"):
        # Audio uploads (greetings, prompts, music on hold) are the handler's: it streams them up
        # to media.max_upload_bytes (read() stops at the app's 1 MB) and checks the bytes itself.
        return
    raw = await request.read()  # cached: the handler reads the same bytes
    if request.content_type in _JSON_TYPES or raw[:1] in (b"{", b"["):
        try:
            document = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return  # not JSON: the handler's decoder answers with its own 422
        found = _walk(document, "")
        if found is not None:
            raise _refuse(found[0], found[1], "a JSON string")
    elif b"\x00" in raw and not request.content_type.startswith(("image/", "audio/")):  # logos, WAVs: NULs
        raise _refuse("body", "NUL", "the body")


@web.middleware
async def reject_control_characters(request: web.Request, handler: Handler) -> web.StreamResponse:
    check_query_and_path(request)
    await check_body(request)
    return await handler(request)
