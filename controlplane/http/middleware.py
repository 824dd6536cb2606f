"""The middleware stack: request ids and problem+json, then the guard (who is
calling, rate limits, scopes, the audit actor), then idempotency (idempotency.py).

Callers: the portal's service token (any partner, never rate limited), a partner
API key (``sk_live_...``, resolved by the ``key_authenticator`` the apikeys plugin
installs; without it only the tokens are accepted), or the operator's platform token
(platform operations only, see caller.py; not accepted when the app has none).
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Protocol

import asyncpg
import structlog
from aiohttp import web

from controlplane.http import access
from controlplane.http.caller import Caller, CallerKind, caller_key, token_caller
from controlplane.http.problems import Problem, problem_response
from controlplane.http.ratelimit import RateLimiter
from controlplane.shared.actor import Actor, bind_actor, reset_actor

REQUEST_ID_HEADER = "X-Request-Id"
REPLAYED_HEADER = "Idempotent-Replayed"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})
MUTATIONS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CALLER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger(__name__)


class KeyAuthenticator(Protocol):
    async def authenticate(self, token: str) -> Caller: ...


class MutationAuditor(Protocol):
    """Writes the generic entry of a mutation whose service wrote none (the audit plugin installs one)."""

    async def unaudited(self, request: web.Request, action: str, actor: Actor) -> None: ...


request_id_key = web.RequestKey("request_id", str)
service_token = web.AppKey("service_token", str)
platform_token = web.AppKey("platform_token", str)
key_authenticator = web.AppKey("key_authenticator", KeyAuthenticator)
mutation_auditor = web.AppKey("mutation_auditor", MutationAuditor)
rate_limiter = web.AppKey("rate_limiter", RateLimiter)
db_pool = web.AppKey("db_pool", asyncpg.Pool)
# Route -> Access, filled lazily from the (method, path template) table of the contract.
_route_cache = web.AppKey("route_access_cache", dict[web.AbstractRoute, access.Access | None])


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
            # Allow on a 405 (RFC 9110 requires it), Retry-After and the like survive.
            kept = {h: exc.headers[h] for h in ("Allow", "Retry-After") if h in exc.headers}
            response = problem_response(Problem(exc.status, exc.reason, headers=kept), request_id)
        except Exception:
            log.exception("http.unhandled", method=request.method, path=request.path)
            response = problem_response(Problem(500, "internal error; quote the request id"), request_id)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response


def _unauthorized() -> Problem:
    return Problem(401, "missing or invalid credentials", code="unauthorized",
                   headers={"WWW-Authenticate": 'Bearer realm="controlplane"'})


async def authenticate(request: web.Request) -> Caller:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized()
    # The tokens first (each compared in constant time), so a generated token that happens
    # to start with "sk_" is never mistaken for an API key.
    presented = token.encode()
    is_service = hmac.compare_digest(presented, request.app[service_token].encode())
    platform = request.app.get(platform_token)
    if platform is not None and hmac.compare_digest(presented, platform.encode()):
        return token_caller(request, CallerKind.PLATFORM)
    if is_service:
        return token_caller(request, CallerKind.SERVICE)
    keys = request.app.get(key_authenticator)
    if keys is not None and token.startswith("sk_"):
        return await keys.authenticate(token)
    raise _unauthorized()


def route_access(request: web.Request) -> access.Access | None:
    route = request.match_info.route
    if route.resource is None:  # no route matched: aiohttp answers 404/405 itself
        return None
    cache = request.app[_route_cache]
    try:
        return cache[route]
    except KeyError:
        template = access.route_template(request)
        found = request.app[access.route_access].get((request.method, template)) if template else None
        cache[route] = found
        return found


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate, rate-limit API keys, check the route's scope, bind the audit actor."""
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    caller = await authenticate(request)
    request[caller_key] = caller
    verdict = None
    if caller.kind is CallerKind.API_KEY:
        assert caller.key_id is not None and caller.partner_id is not None and caller.rate_limit is not None
        verdict = request.app[rate_limiter].take(caller.key_id, caller.rate_limit, caller.partner_id)
        if not verdict.allowed:
            raise Problem(429, f"over the {verdict.which} limit of {verdict.limit} requests per minute",
                          code="rate_limited", headers={"Retry-After": str(verdict.retry_after)},
                          extra={"limit_scope": verdict.which})
    rule = route_access(request)
    access.check(request, rule)
    actor = Actor(caller.kind.value, caller.partner_id, caller.key_id, caller.user_id,
                  request[request_id_key])
    token = bind_actor(actor)
    try:
        response = await handler(request)
    finally:
        reset_actor(token)
    if (request.method in MUTATIONS and response.status < 400 and actor.recorded == 0
            and REPLAYED_HEADER not in response.headers):
        await _generic_entry(request, rule, actor)
    if verdict is not None:
        response.headers["X-RateLimit-Limit"] = str(verdict.limit)
        response.headers["X-RateLimit-Remaining"] = str(verdict.remaining)
    return response


async def _generic_entry(request: web.Request, rule: access.Access | None, actor: Actor) -> None:
    """Safety net for a mutation whose service wrote no entry: who, which route, which id.

    Written after the change committed (so, unlike service entries, not atomically with it);
    a failure is logged, never turned into an error for a change that is already made.
    """
    auditor = request.app.get(mutation_auditor)
    if auditor is None:
        return
    try:
        await auditor.unaudited(request, rule.operation_id if rule else request.method.lower(), actor)
    except Exception:
        log.exception("audit.generic_entry_failed", path=request.path)


def install_access_table(app: web.Application, table: dict[tuple[str, str], access.Access]) -> None:
    app[access.route_access] = table
    app[_route_cache] = {}
