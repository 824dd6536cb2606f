"""Errors as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

from typing import Any

from aiohttp import web
import msgspec

PROBLEM_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """Raised by handlers and services; rendered once, by the error middleware.

    ``field`` names the input at fault (a JSON pointer-ish dotted path) for 422s.
    """

    def __init__(self, status: int, detail: str, *, field: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.code = code
        self.headers = headers or {}
        self.extra = extra or {}


def problem_response(problem: Problem, request_id: str) -> web.Response:
    body: dict[str, Any] = {
        "type": f"about:blank#{problem.code}" if problem.code else "about:blank",
        "title": _TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
        "request_id": request_id,
    }
    if problem.field is not None:
        body["field"] = problem.field
    body.update(problem.extra)
    return web.Response(status=problem.status, body=msgspec.json.encode(body),
                        content_type=PROBLEM_TYPE, headers=problem.headers)
