"""Turning a presented ``sk_live_`` key into a Caller, cheaply.

Lookups are cached for ``CACHE_TTL`` (30 s) per key hash, negative answers too (so a
flood of bad keys does not reach the database). A change made through this process
(revoke, edit, delete) drops the key's entry at once; another daemon instance sees it
when its entry expires, so a revoked key is refused everywhere within 30 s. Expiry is
checked against the clock on every request, so it is exact.

The key is looked up by SHA-256: it carries 256 random bits, so a fast hash is as
unguessable as a slow one, and it allows an indexed, constant-cost lookup on every
request (bcrypt/argon2 exist for low-entropy passwords and would cost ~100 ms here).

A key that is not cached is read once however many requests present it at the same moment
(single flight): the first reads it, the others wait for its answer. A change made meanwhile
(``forget``) keeps that answer out of the cache.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import structlog

from controlplane.apikeys import store
from controlplane.apikeys.models import PREFIX, hash_key
from controlplane.http.caller import Caller, CallerKind
from controlplane.http.problems import Problem

CACHE_TTL = 30.0
CACHE_SIZE = 10_000
TOUCH_EVERY = 60.0
_MAX_KEY = 128
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Known:
    key_id: str
    caller: Caller
    revoked: bool
    expires_at: datetime | None


def _unauthorized(detail: str, code: str = "unauthorized") -> Problem:
    return Problem(401, detail, code=code, headers={"WWW-Authenticate": 'Bearer realm="controlplane"'})


@dataclass
class KeyAuthenticator:
    pool: asyncpg.Pool
    ttl: float = CACHE_TTL
    clock: Callable[[], float] = time.monotonic
    _cache: OrderedDict[bytes, tuple[float, _Known | None]] = field(default_factory=OrderedDict)
    _touched: dict[str, float] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _loading: dict[bytes, asyncio.Future[_Known | None]] = field(default_factory=dict)
    _forgotten: int = 0  # forget() calls so far: a read started before one is not cached

    async def authenticate(self, token: str) -> Caller:
        if not token.startswith(PREFIX) or len(token) > _MAX_KEY:
            raise _unauthorized("missing or invalid credentials")
        digest = hash_key(token)
        now = self.clock()
        hit = self._cache.get(digest)
        known = hit[1] if hit is not None and now - hit[0] < self.ttl else await self._lookup(digest, now)
        if known is None:
            raise _unauthorized("missing or invalid credentials")
        if known.revoked:
            raise _unauthorized("this API key was revoked", "key_revoked")
        if known.expires_at is not None and known.expires_at <= datetime.now(UTC):
            raise _unauthorized("this API key has expired", "key_expired")
        self._touch(known.key_id, now)
        return known.caller

    async def _lookup(self, digest: bytes, now: float) -> _Known | None:
        while (pending := self._loading.get(digest)) is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request was cancelled, not the read it waited for
                # the reading request was cancelled (its client left): read again
        future: asyncio.Future[_Known | None] = asyncio.get_running_loop().create_future()
        self._loading[digest] = future
        forgotten = self._forgotten
        try:
            known = self._known(await store.by_hash(self.pool, digest))
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no warning when nobody waited
            raise
        finally:
            del self._loading[digest]
        if forgotten == self._forgotten:
            self._cache[digest] = (now, known)
            self._cache.move_to_end(digest)
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        future.set_result(known)
        return known

    @staticmethod
    def _known(row: asyncpg.Record | None) -> _Known | None:
        if row is None:
            return None
        tenants = row["tenant_ids"]
        caller = Caller(CallerKind.API_KEY, row["partner_id"], key_id=row["id"], scopes=frozenset(row["scopes"]),
                        tenant_ids=None if tenants is None else frozenset(tenants), rate_limit=row["rate_limit"])
        return _Known(row["id"], caller, row["revoked_at"] is not None, row["expires_at"])

    def forget(self, key_id: str) -> None:
        """Drop a changed key from this process's cache (other instances: within the TTL)."""
        self._forgotten += 1
        for digest, (_, known) in list(self._cache.items()):
            if known is not None and known.key_id == key_id:
                del self._cache[digest]

    def _touch(self, key_id: str, now: float) -> None:
        """Record last use at most once a minute per key, off the request path."""
        last = self._touched.get(key_id)
        if last is not None and now - last < TOUCH_EVERY:
            return
        self._touched[key_id] = now
        task = asyncio.get_running_loop().create_task(self._write_touch(key_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_touch(self, key_id: str) -> None:
        try:
            await store.touch(self.pool, key_id)
        except Exception:  # last-used is best effort; never fail a request over it
            log.warning("apikeys.touch_failed", key_id=key_id, exc_info=True)
