"""The dispatcher: stamps positions on committed events and fans them out, into the lane.

One worker at a time dispatches: the one holding ``lane_store.DISPATCH_LOCK``, a session
advisory lock on the connection it dispatches on (released by PostgreSQL when that worker
dies). On taking it, it recovers what a dead dispatcher's lane held (``lane_store.recover``).
Each batch's deliveries go to the lane (first attempts made from memory, rows written with
their outcome), except those of a group that still has a stored delivery waiting for its
first attempt: those are stored for the row path (PENDING rows, as before the lane), behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import timedelta

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from controlplane.db.connection import Connection
from controlplane.db.errors import DB_ERRORS
from controlplane.events import store as events_store
from controlplane.webhooks import lane_store, schedule
from controlplane.webhooks.lane import Lane
from controlplane.webhooks.models import Job

log = structlog.get_logger(__name__)

DISPATCH_BATCH = 1000
# The lane holds at most this many waiting deliveries: past it, events wait unsequenced in the
# database (memory stays bounded however far the endpoints fall behind).
LANE_LIMIT = 20_000
# How often the lane's endpoints are checked (disabled, deleted, URL or secret changed: what
# waits for them goes to the row path, which reads them at each claim).
ENDPOINT_CHECK_S = 0.1
# The worker's own commits (sequencing, claims, outcomes) do not wait for the WAL flush: each
# waited for an fsync (several ms on a busy disk) while its deliveries held their slots. What
# a PostgreSQL crash can lose is the last ~0.2 s (wal_writer_delay) of them: outcomes and
# claims that were never durable are retried (a duplicate, which at-least-once allows), and
# sequencing is redone from the events, whose own commits stay synchronous. A crash of the
# worker loses nothing: the server has every commit. (docs/performance.md)
NO_FLUSH_WAIT = "SET LOCAL synchronous_commit TO off"


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, lane: Lane, offset: Callable[[], timedelta], *,
                 work: Callable[[], None], failed: Callable[[], None], poll_interval: float,
                 linger: float) -> None:
        self.pool = pool
        self.lane = lane
        self._offset = offset        # the clock seam's offset, read at each use
        self._work = work            # the pump has something to do
        self._failed = failed        # a database error was survived (logged here)
        self.poll_interval = poll_interval
        self.linger = linger
        self.events = asyncio.Event()   # new events committed (NOTIFY), or a wake
        self.drained = asyncio.Event()  # the lane went below its limit
        self.dispatching = False
        self._lane_lock = asyncio.Lock()  # a batch's fan-out and a spill never interleave
        self._cursor_written = 0
        self._checked = 0.0

    async def run(self) -> None:
        """Dispatch while holding the lock; wait for it otherwise (another worker dispatches)."""
        while True:
            try:
                async with self.pool.acquire() as conn:
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", lane_store.DISPATCH_LOCK):
                        await self._dispatch(conn)
            except DB_ERRORS:
                self._failed()
                log.exception("webhooks.step_failed", step="dispatch")
            await asyncio.sleep(self.poll_interval)

    async def _dispatch(self, conn: PoolConnectionProxy) -> None:
        try:
            async with conn.transaction():
                top = await lane_store.recover(conn, schedule.MAX_ATTEMPTS, self._offset())
            async with self._lane_lock:
                self.lane.reset(top)
            self._cursor_written = top
            self.dispatching = True
            self._work()
            while not conn.is_closed():
                await wait_set(self.events, self.poll_interval)
                await asyncio.sleep(self.linger)
                self.events.clear()
                while await self._batch(conn):
                    pass
        finally:
            self.dispatching = False
            self.lane.drop()  # the next dispatcher recovers it (the cursor is below it)
            unlocked = False
            try:
                await conn.execute("SELECT pg_advisory_unlock($1)", lane_store.DISPATCH_LOCK)
                unlocked = True
            except DB_ERRORS:
                pass
            finally:
                if not unlocked:  # a database error, or cancelled again meanwhile
                    conn.terminate()  # the lock goes with the session; never back to the pool with it

    async def _batch(self, conn: Connection) -> bool:
        """Sequence and fan out one batch; True when there may be more."""
        while self.lane.queued >= LANE_LIMIT:
            self.drained.clear()
            await wait_set(self.drained, self.poll_interval)
        async with self._lane_lock:
            async with conn.transaction():
                await conn.execute(NO_FLUSH_WAIT)
                sequenced = await events_store.sequence_pending(conn, DISPATCH_BATCH)
                batch = await lane_store.targets(conn, sequenced, schedule.MAX_ATTEMPTS, self._offset())
                read_at = time.monotonic()
                await lane_store.store_pending(conn, batch.stored, self._offset())
                cursor = self.cursor_due()
                if cursor is not None:
                    await lane_store.advance(conn, cursor)
            self.written(cursor)
            self.lane.add(batch.lane, sequenced[-1].position if sequenced else 0, read_at)
        if batch.lane or batch.stored:
            self._work()
        return len(sequenced) == DISPATCH_BATCH

    def cursor_due(self) -> int | None:
        """The lane's cursor when it moved past what was written: the caller writes it (in its
        transaction) and says ``written`` after the commit."""
        cursor = self.lane.cursor()
        return cursor if self.dispatching and cursor > self._cursor_written else None

    def written(self, cursor: int | None) -> None:
        if cursor is not None:
            self._cursor_written = max(self._cursor_written, cursor)

    def take(self, room: int, elsewhere: Mapping[str, int]) -> list[tuple[Job, float]]:
        taken = self.lane.take(room, elsewhere) if self.dispatching else []
        if self.lane.queued < LANE_LIMIT:
            self.drained.set()
        return taken

    async def check_endpoints(self, conn: Connection) -> None:
        """Send to the row path what waits in the lane for an endpoint that is no longer as it
        was when its events were dispatched (at most every ENDPOINT_CHECK_S)."""
        if not self.lane.queued or time.monotonic() - self._checked < ENDPOINT_CHECK_S:
            return
        self._checked = time.monotonic()
        waiting = self.lane.endpoints()
        rows = await conn.fetch("SELECT id, url, secret_enc FROM webhook_endpoints"
                                " WHERE id = ANY($1::text[]) AND enabled AND deleted_at IS NULL", list(waiting))
        now = {r["id"]: (r["url"], bytes(r["secret_enc"])) for r in rows}
        changed = {endpoint for endpoint, seen in waiting.items() if now.get(endpoint) != seen}
        if not changed:
            return
        async with self._lane_lock:
            jobs = self.lane.spill(changed)
            async with conn.transaction():
                await lane_store.store_pending(conn, jobs, self._offset())
            self.lane.recorded(j.position for j in jobs)
        log.info("webhooks.lane_spilled", endpoints=sorted(changed), deliveries=len(jobs))
        self._work()


async def wait_set(event: asyncio.Event, timeout: float) -> None:
    """Until ``event`` is set or ``timeout`` seconds passed (the worker's loops poll on both)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):  # not wait_for: in 3.11 it can swallow a cancel
            await event.wait()
