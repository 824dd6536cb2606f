"""Request bodies, query instants and JSON responses shared by the plugins' handlers."""

from __future__ import annotations

import re
import types
import typing
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from controlplane.http.problems import Problem
from controlplane.shared.problems import FieldError

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


def _field_error(exc: msgspec.ValidationError, prefix: str = "") -> FieldError:
    """msgspec's message (``... - at `$.a[0]```) as the dotted field at fault and what is wrong."""
    message, path = str(exc), ""
    match = _AT.match(message)
    if match:
        message, path = match[1], match[2]
    named = _NAMED.match(message)
    if named:
        path = f"{path}.{named[1]}" if path else named[1]
    path = prefix + path if path.startswith("[") else ".".join(p for p in (prefix, path) if p)
    return FieldError(re.sub(r"\[\d+\]$", "", path) or "body", f"{path or 'body'}: {message}")


def _every_error(data: Any, kind: Any, prefix: str = "") -> list[FieldError]:
    """Each field of a struct checked on its own, so one request learns of all its faults
    (msgspec stops at the first). Nested structs are walked; other types are checked whole."""
    options = [t for t in typing.get_args(kind) if t is not type(None)]
    if data is not None and typing.get_origin(kind) in (typing.Union, types.UnionType) and len(options) == 1:
        kind = options[0]  # ``Struct | None`` given an object: walk the struct
    if not (isinstance(kind, type) and issubclass(kind, msgspec.Struct) and isinstance(data, dict)):
        try:
            msgspec.convert(data, type=kind)
        except msgspec.ValidationError as exc:
            return [_field_error(exc, prefix)]
        return []
    errors = []
    fields = msgspec.structs.fields(kind)
    names = {f.encode_name for f in fields}
    for f in fields:
        where = ".".join(p for p in (prefix, f.encode_name) if p)
        if f.encode_name in data:
            errors += _every_error(data[f.encode_name], f.type, where)
        elif f.required:
            errors.append(FieldError(where, f"{where}: Object missing required field `{f.encode_name}`"))
    if getattr(kind, "__struct_config__").forbid_unknown_fields:
        for name in sorted(data.keys() - names):
            where = ".".join(p for p in (prefix, name) if p)
            errors.append(FieldError(where, f"{where}: Object contains unknown field `{name}`"))
    return errors


async def read_body(request: web.Request, kind: type[B]) -> B:
    """The body decoded as ``kind``; a 422 naming every field at fault otherwise."""
    raw = await request.read()
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        first = _field_error(exc)
        try:
            errors = _every_error(msgspec.json.decode(raw), kind)
        except (msgspec.MsgspecError, TypeError):  # not JSON after all (msgspec checks while parsing)
            errors = []
        # msgspec's own first error leads (a check across fields, in __post_init__, is only there)
        errors = [first, *(e for e in errors if e.field != first.field)]
        raise Problem(422, "; ".join(e.message for e in errors), errors=errors) from None
    except msgspec.DecodeError:
        raise Problem(422, "the body must be a JSON object", field="body") from None
