"""The middleware stack: request ids and problem+json, then the guard (who is
calling, rate limits, scopes, the audit actor), then idempotency (idempotency.py).

Callers: the portal's service token (any partner, never rate limited), a partner
API key (``sk_live_...``, resolved by the ``key_authenticator`` the apikeys plugin
installs; without it only the tokens are accepted), or the operator's platform token
(platform operations only, see caller.py; not accepted when the app has none).
"""

from __future__ import annotations

import dataclasses
import hmac
import itertools
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Protocol

import asyncpg
import structlog
from aiohttp import web

from controlplane.http import access
from controlplane.http.caller import USER_HEADER, Caller, CallerKind, caller_key, token_caller
from controlplane.http.problems import Problem, problem_response
from controlplane.http.ratelimit import RateLimiter
from controlplane.shared.actor import Actor, TeamRole, bind_actor, reset_actor

REQUEST_ID_HEADER = "X-Request-Id"
REPLAYED_HEADER = "Idempotent-Replayed"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})
MUTATIONS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CALLER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Request ids need to be unique, not secret: a random prefix per process and a counter
# (was 8 bytes from the OS per request: a syscall on every request, docs/performance.md).
_ID_PREFIX = secrets.token_hex(4)
_ids = itertools.count(1)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger(__name__)


class KeyAuthenticator(Protocol):
    async def authenticate(self, token: str) -> Caller: ...


class MutationAuditor(Protocol):
    """Writes the generic entry of a mutation whose service wrote none (the audit plugin installs one)."""

    async def unaudited(self, request: web.Request, action: str, actor: Actor) -> None: ...

    async def refused(self, request: web.Request, action: str, actor: Actor, code: str | None) -> None:
        """The entry of an attempt the guard refused with a 403 before its handler ran."""
        ...


class ActingUsers(Protocol):
    """Resolves ``X-Acting-User`` (the team plugin installs one): the role of an ACTIVE user
    of the partner, None for anyone else. Called on every service-token request naming a
    user, so it answers from a short-lived cache."""

    async def role(self, partner_id: str, user_id: str) -> TeamRole | None: ...


request_id_key = web.RequestKey("request_id", str)
service_token = web.AppKey("service_token", str)
platform_token = web.AppKey("platform_token", str)
key_authenticator = web.AppKey("key_authenticator", KeyAuthenticator)
mutation_auditor = web.AppKey("mutation_auditor", MutationAuditor)
acting_users = web.AppKey("acting_users", ActingUsers)
rate_limiter = web.AppKey("rate_limiter", RateLimiter)
db_pool = web.AppKey("db_pool", asyncpg.Pool)
# Route -> Access, filled lazily from the (method, path template) table of the contract.
_route_cache = web.AppKey("route_access_cache", dict[web.AbstractRoute, access.Access | None])


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request an id (the caller's, when sane), bind it to logs, echo it."""
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = supplied if _CALLER_ID.match(supplied) else f"req_{_ID_PREFIX}{next(_ids):08x}"
    request[request_id_key] = request_id
    # bind/reset rather than ``bound_contextvars``: that one copies the whole context to save
    # what it shadows (~3x the cost, per request); a request's task starts from a clean copy.
    bound = structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
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
    finally:
        structlog.contextvars.reset_contextvars(**bound)


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
    """Authenticate, rate-limit API keys, validate the acting user, check the route's scope and
    the acting user's role (refusals of mutations are audited), bind the audit actor."""
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    caller = await authenticate(request)
    request[caller_key] = caller
    verdict = None
    if caller.kind is CallerKind.API_KEY:
        assert caller.key_id is not None and caller.partner_id is not None and caller.rate_limit is not None
        verdict = await request.app[rate_limiter].acquire(caller.key_id, caller.rate_limit, caller.partner_id)
        if not verdict.allowed:
            raise Problem(429, f"over the {verdict.which} limit of {verdict.limit} requests per minute",
                          code="rate_limited", headers={"Retry-After": str(verdict.retry_after)},
                          extra={"limit_scope": verdict.which})
    caller = await _acting_user(request, caller)
    request[caller_key] = caller
    rule = route_access(request)
    actor = Actor(caller.kind.value, caller.partner_id, caller.key_id, caller.user_id,
                  request[request_id_key], role=caller.role)
    try:
        access.check(request, rule)
        if caller.role is not None and caller.role.read_only and request.method in MUTATIONS:
            raise Problem(403, f"user {caller.user_id} is a {caller.role.value}: read-only, changes need a"
                          f" {TeamRole.PARTNER_ADMIN.value}", code="read_only_role")
    except Problem as refused:
        if refused.status == 403 and request.method in MUTATIONS:
            await _refused_entry(request, rule, actor, refused.code)
        raise
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


async def _acting_user(request: web.Request, caller: Caller) -> Caller:
    """Validate ``X-Acting-User``: with the service token, an ACTIVE user of the partner; refused
    with an API key; the platform token's is the operator's name, kept as sent.

    Refused before any scope check, and not audited: an unknown user is nobody to attribute to."""
    user = request.headers.get(USER_HEADER)
    if user is None or caller.kind is CallerKind.PLATFORM:
        # The operator's own people are not partner users: the platform token's header names
        # them for the audit log as sent (docs/platform.md), with no role to enforce.
        return caller
    if caller.kind is not CallerKind.SERVICE:
        raise Problem(403, f"{USER_HEADER} is sent by the portal with its service token only; an API key"
                      " is a machine credential and acts as itself", code="acting_user_not_allowed",
                      field=USER_HEADER)
    assert caller.user_id == user  # token_caller checked its format (422 otherwise)
    if caller.partner_id is None:
        raise Problem(422, f"{USER_HEADER} needs the X-Partner-Id header naming the user's partner",
                      field=USER_HEADER)
    users = request.app.get(acting_users)
    role = None if users is None else await users.role(caller.partner_id, user)
    if role is None:
        raise Problem(403, f"{USER_HEADER}: {user} is not an active user of partner {caller.partner_id}",
                      code="unknown_acting_user", field=USER_HEADER)
    return dataclasses.replace(caller, role=role)


async def _refused_entry(request: web.Request, rule: access.Access | None, actor: Actor,
                         code: str | None) -> None:
    """Audit an attempt the guard refused (who tried what), when there is a partner to file it under.

    A failure is logged and the 403 still answered: the refusal must not depend on the log."""
    auditor = request.app.get(mutation_auditor)
    if auditor is None or actor.partner_id is None or rule is None:  # no partner, or no such operation
        return
    try:
        await auditor.refused(request, rule.operation_id, actor, code)
    except Exception:
        log.exception("audit.refused_entry_failed", path=request.path)


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
