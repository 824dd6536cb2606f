"""Errors as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

from typing import Any

from aiohttp import web
import msgspec

# The type lives in the shared kernel (services raise it without importing HTTP);
# HTTP's own modules keep importing it from here, beside its rendering.
from controlplane.shared.problems import Problem

__all__ = ["PROBLEM_TYPE", "Problem", "problem_response"]

PROBLEM_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
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


# The machine-readable ``code`` of a problem raised without its own: one per status.
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    402: "payment_declined",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


def problem_code(problem: Problem) -> str:
    return problem.code or _CODES.get(problem.status, "error")


def problem_response(problem: Problem, request_id: str) -> web.Response:
    body: dict[str, Any] = {
        "type": f"about:blank#{problem.code}" if problem.code else "about:blank",
        "code": problem_code(problem),
        "title": _TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
        "request_id": request_id,
    }
    if problem.field is not None:
        body["field"] = problem.field
    if problem.errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in problem.errors]
    body.update(problem.extra)
    return web.Response(status=problem.status, body=msgspec.json.encode(body),
                        content_type=PROBLEM_TYPE, headers=problem.headers)
