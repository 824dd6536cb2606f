"""Leases: work that must happen once runs in one daemon, and moves when that daemon dies.

A lease is a row in ``leases`` (name, holder, expiry), taken and renewed by one statement that
succeeds only when the row is free, expired, or already ours. Rows rather than session
advisory locks: an advisory lock lives as long as its connection, which a frozen or partitioned
daemon may keep open for as long as TCP keepalive allows (minutes); a row expires at a time the
database decides, so takeover is bounded by ``ttl``, the holder is visible to the operator
(``SELECT * FROM leases``), and the same rows serve as node heartbeats
(``node:<id>``, read by the failover job). Times come from the database's clock alone.

``once(...)`` turns a background job into one that runs only while this daemon holds the
lease: it waits for the lease, starts the job, renews every ``ttl / 3``, and cancels the job
when a renewal fails (another daemon may have taken over); then it waits again. A job running
under a lease must tolerate being cancelled at any await (every job here is idempotent or
transactional: that is what made it safe to restart before).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import structlog

from controlplane.db.errors import DB_ERRORS

log = structlog.get_logger(__name__)
Job = Callable[[], Awaitable[None]]

_TAKE = """
INSERT INTO leases AS l (name, holder, node_id, acquired_at, renewed_at, expires_at)
VALUES ($1, $2, $3, now(), now(), now() + make_interval(secs => $4))
ON CONFLICT (name) DO UPDATE SET
    holder = excluded.holder, node_id = excluded.node_id, renewed_at = excluded.renewed_at,
    expires_at = excluded.expires_at,
    acquired_at = CASE WHEN l.holder = excluded.holder THEN l.acquired_at ELSE excluded.acquired_at END
WHERE l.holder = excluded.holder OR l.expires_at < now()
RETURNING holder
"""


def process_holder(node_id: str) -> str:
    """A holder name unique to this daemon process: ``<node>:<pid>:<random>``."""
    return f"{node_id}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Holder:
    """Who takes leases: this daemon (its node and a per-process name) and the lease length."""

    pool: asyncpg.Pool
    node_id: str
    name: str
    ttl: float = 10.0

    @classmethod
    def for_process(cls, pool: asyncpg.Pool, node_id: str, ttl: float) -> Holder:
        return cls(pool, node_id, process_holder(node_id), ttl)

    async def take(self, lease: str) -> bool:
        """Take or renew ``lease``; True when this holder has it for ``ttl`` seconds from now."""
        try:
            row = await self.pool.fetchrow(_TAKE, lease, self.name, self.node_id, self.ttl)
        except DB_ERRORS:
            log.warning("lease.unreachable", lease=lease, holder=self.name, exc_info=True)
            return False
        return row is not None

    async def release(self, lease: str) -> None:
        with contextlib.suppress(*DB_ERRORS):
            await self.pool.execute("DELETE FROM leases WHERE name = $1 AND holder = $2", lease, self.name)

    def once(self, lease: str, job: Job) -> Job:
        """``job`` as a background job that runs only while this holder has ``lease``."""

        async def leased() -> None:
            await run_under(self, lease, job)

        leased.__qualname__ = f"lease[{lease}]"
        return leased


async def run_under(holder: Holder, lease: str, job: Job) -> None:
    """Forever: wait for ``lease``, run ``job`` while it is renewed, stop it when it is lost.

    A job that crashes while held is started again at the next renewal (the daemon's supervision
    semantics); one that returns is done until the lease is lost and taken again. The lease is
    released when this task is cancelled (a clean stop), so a peer takes over at once rather
    than after ``ttl``.
    """
    period = holder.ttl / 3
    try:
        while True:
            if not await holder.take(lease):
                await asyncio.sleep(period)
                continue
            log.info("lease.acquired", lease=lease, holder=holder.name)
            await _hold(holder, lease, job, period)
    except asyncio.CancelledError:
        # Shielded: the release must reach the database although this task is being cancelled.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(holder.release(lease))
        raise


async def _hold(holder: Holder, lease: str, job: Job, period: float) -> None:
    """Run ``job`` while ``lease`` is renewed every ``period``; return when it is lost."""
    task: asyncio.Task[None] | None = asyncio.ensure_future(job())
    try:
        while True:
            if task is not None:
                done, _ = await asyncio.wait({task}, timeout=period)
                if done:
                    task = None
                    if not _report(lease, done.pop()):
                        await asyncio.sleep(1.0)
                        task = asyncio.ensure_future(job())
            else:
                await asyncio.sleep(period)
            if not await holder.take(lease):
                log.warning("lease.lost", lease=lease, holder=holder.name)
                return
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _report(lease: str, task: asyncio.Task[None]) -> bool:
    """Log how the job ended; True when it returned (done), False when it crashed (restart it)."""
    exc = task.exception()
    if exc is not None:
        log.error("lease.job_crashed", lease=lease, error=repr(exc), exc_info=exc)
        return False
    log.info("lease.job_returned", lease=lease)
    return True


async def heartbeat(holder: Holder) -> None:
    """Keep this node's ``node:<id>`` lease: its expiry is how the others see it die.

    The node's row is held under the node id (not the process name), so a daemon restarted on
    the same node renews it at once instead of waiting for its own old row to expire.
    """
    node = Holder(holder.pool, holder.node_id, f"node:{holder.node_id}", holder.ttl)
    lease = node_lease(holder.node_id)
    while True:
        if not await node.take(lease):
            log.error("lease.node_heartbeat_refused", node=holder.node_id)
        await asyncio.sleep(holder.ttl / 3)


def node_lease(node_id: str) -> str:
    return f"node:{node_id}"
