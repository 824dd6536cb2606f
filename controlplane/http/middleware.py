"""Request ids, problem+json errors and service-token authentication."""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from controlplane.http.caller import caller_key, service_caller
from controlplane.http.problems import Problem, problem_response

REQUEST_ID_HEADER = "X-Request-Id"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})
_CALLER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger(__name__)

request_id_key = web.RequestKey("request_id", str)
service_token = web.AppKey("service_token", str)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request an id (the caller's, when sane), bind it to logs, echo it."""
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = supplied if _CALLER_ID.match(supplied) else f"req_{secrets.token_hex(8)}"
    request[request_id_key] = request_id
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            response = await handler(request)
        except Problem as problem:
            response = problem_response(problem, request_id)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = problem_response(Problem(exc.status, exc.reason), request_id)
        except Exception:
            log.exception("http.unhandled", method=request.method, path=request.path)
            response = problem_response(Problem(500, "internal error; quote the request id"), request_id)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response


@web.middleware
async def service_token_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = request.app[service_token]
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Problem(401, "missing or invalid credentials", code="unauthorized",
                      headers={"WWW-Authenticate": 'Bearer realm="controlplane"'})
    request[caller_key] = service_caller(request)
    return await handler(request)
