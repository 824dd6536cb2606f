"""``Idempotency-Key`` on POST: a retry gets the first outcome instead of a second effect.

Records are per caller (an API key, or the portal or the platform acting for one partner) and per key,
kept 24 h. Same key, same method+path+body: the first outcome (any status below 500,
4xx included, like a 409 on a taken prefix) is replayed: status, body, Content-Type and
Location (with ``Idempotent-Replayed: true``). Same key, another request: 422. While
the first request is still running, a retry gets 409 with ``Retry-After: 1`` rather
than waiting (no connection is held; the client retries as for any 409). 5xx and
crashed requests release the key so a retry runs again.

Stored bodies are sealed (AES-256-GCM, ``ReplayBox``): a first response may carry a
secret shown once (an API key, a webhook signing secret, a SIP password), and the
client that lost it must get it back on its retry, but nobody reading the table may.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable

import asyncpg
import structlog
from aiohttp import web
from cryptography.exceptions import InvalidTag

from controlplane.http import idempotency_store as store
from controlplane.http.caller import CallerKind, caller_key
from controlplane.http.middleware import REPLAYED_HEADER, Handler, db_pool, request_id_key
from controlplane.http.problems import Problem, problem_response
from controlplane.secret_box import SecretBox

HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x20-\x7e]{1,255}")
KEPT_HEADERS = ("Content-Type", "Location")
PURGE_SECONDS = 3600.0
REPLAYS = b"controlplane idempotency replays v1"
log = structlog.get_logger(__name__)


class ReplayBox:
    """Seals stored replays; the key is derived on first use (no key file for an app that never replays)."""

    def __init__(self, key_material: Callable[[], str]) -> None:
        self._key_material = key_material
        self._box: SecretBox | None = None

    def _get(self) -> SecretBox:
        if self._box is None:
            self._box = SecretBox(self._key_material(), info=REPLAYS)
        return self._box

    def seal(self, scope: str, key: str, body: bytes) -> bytes:
        return self._get().seal_bytes(f"{scope}\n{key}", body)

    def open(self, scope: str, key: str, sealed: bytes) -> bytes:
        return self._get().open_bytes(f"{scope}\n{key}", sealed)


replay_box = web.AppKey("idempotency_replay_box", ReplayBox)


def _scope(request: web.Request) -> str:
    caller = request[caller_key]
    if caller.kind is CallerKind.API_KEY:
        return f"key:{caller.key_id}"
    if caller.kind is CallerKind.PLATFORM:
        return f"platform:{caller.partner_id or '-'}"
    return f"portal:{caller.partner_id or '-'}"


@web.middleware
async def idempotency(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.headers.get(HEADER)
    pool = request.app.get(db_pool)
    if request.method != "POST" or key is None or pool is None or caller_key not in request:
        return await handler(request)
    if not _KEY.fullmatch(key):
        raise Problem(422, f"{HEADER}: 1 to 255 printable characters", field=HEADER)
    body = await request.read()
    digest = hashlib.sha256(b"%s %s\n%s" % (request.method.encode(), request.path_qs.encode(), body)).digest()
    scope = _scope(request)
    existing = await store.claim(pool, scope, key, digest)
    if existing is not None:
        if existing.request_hash != digest:
            raise Problem(422, f"{HEADER} {key!r} was used for a different request", field=HEADER,
                          code="idempotency_key_reused")
        if existing.status is None:
            raise Problem(409, f"a request with {HEADER} {key!r} is still running; retry shortly",
                          code="idempotency_in_progress", headers={"Retry-After": "1"})
        try:
            body = request.app[replay_box].open(scope, key, existing.body)
        except (InvalidTag, ValueError):  # sealed under another key (secret_key changed)
            raise Problem(409, f"the outcome of {HEADER} {key!r} can no longer be replayed; use a new key",
                          field=HEADER, code="idempotency_replay_unavailable") from None
        return web.Response(status=existing.status, body=body,
                            headers={**existing.headers, REPLAYED_HEADER: "true"})
    try:
        try:
            response = await handler(request)
        except Problem as problem:  # a 4xx is an outcome too: replay it
            response = problem_response(problem, request[request_id_key])
    except BaseException:
        await asyncio.shield(store.release(pool, scope, key))
        raise
    # Only a body held in memory can be replayed (a streamed Payload cannot).
    if response.status >= 500 or not isinstance(response, web.Response) \
            or not isinstance(response.body, (bytes, bytearray)):
        await store.release(pool, scope, key)
        return response
    headers = {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers}
    sealed = request.app[replay_box].seal(scope, key, bytes(response.body))
    await store.complete(pool, scope, key, response.status, headers, sealed)
    return response


async def purge_forever(pool: asyncpg.Pool) -> None:
    """Scheduled job: records older than 24 h go."""
    while True:
        try:
            purged = await store.purge(pool)
            if purged:
                log.info("idempotency.purged", records=purged)
        except Exception:
            log.exception("idempotency.purge_failed")
        await asyncio.sleep(PURGE_SECONDS)
