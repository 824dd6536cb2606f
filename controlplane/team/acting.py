"""``X-Acting-User`` resolved to a role, cheaply: the guard's ``ActingUsers``.

Answers (negative ones too) are cached per (partner, user) for ``CACHE_TTL`` (10 s), so a
portal page of many requests costs one lookup. A change made through this process (accept,
removal, an owner created active) drops the entry at once; another daemon sees it within
the TTL, well inside seed 003's "sessions are invalidated within ~60 seconds" of a removal.
``last_seen_at`` ("Last Login") is written at most once a minute per user, off the request path.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
import structlog

from controlplane.shared.actor import TeamRole
from controlplane.team import store

CACHE_TTL = 10.0
CACHE_SIZE = 10_000
TOUCH_EVERY = 60.0
log = structlog.get_logger(__name__)


@dataclass
class ActingUserCache:
    pool: asyncpg.Pool
    ttl: float = CACHE_TTL
    clock: Callable[[], float] = time.monotonic
    _cache: OrderedDict[tuple[str, str], tuple[float, TeamRole | None]] = field(default_factory=OrderedDict)
    _touched: dict[str, float] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def role(self, partner_id: str, user_id: str) -> TeamRole | None:
        key, now = (partner_id, user_id), self.clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            role = hit[1]
        else:
            found = await store.active_role(self.pool, partner_id, user_id)
            role = None if found is None else TeamRole(found)
            self._cache[key] = (now, role)
            self._cache.move_to_end(key)
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        if role is not None:
            self._touch(user_id, now)
        return role

    def forget(self, partner_id: str, user_id: str) -> None:
        """Drop a changed user from this process's cache (other instances: within the TTL)."""
        self._cache.pop((partner_id, user_id), None)

    def _touch(self, user_id: str, now: float) -> None:
        last = self._touched.get(user_id)
        if last is not None and now - last < TOUCH_EVERY:
            return
        if len(self._touched) >= CACHE_SIZE:
            self._touched.clear()
        self._touched[user_id] = now
        task = asyncio.get_running_loop().create_task(self._write_touch(user_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_touch(self, user_id: str) -> None:
        try:
            await store.touch(self.pool, user_id)
        except Exception:  # "last seen" is best effort; never fail a request over it
            log.warning("team.touch_failed", user_id=user_id, exc_info=True)
