"""First come, first served for the pool's connections.

asyncpg keeps its free connections in an ``asyncio.LifoQueue``. When every connection is out,
``get()`` parks the caller; a release wakes the first parked one, but a task that runs before it
wakes (a request that reached ``acquire()`` in the same loop iteration) finds the connection free
and takes it, and the woken one parks again *at the back*. Under load a few requests lose that
race over and over: most wait ~0 ms and a few wait hundreds (measured on bench_api: pool wait
p50 0.01 ms, p99 260 ms, docs/performance.md). That was the API's p99.

``FairHolderQueue`` hands a released connection straight to the longest waiter, and a newcomer
takes a free connection only when nobody waits: the wait becomes a FIFO queue, so its tail
shrinks to the queue's length.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:  # private to asyncpg, so not in its stubs: what it is
    _HolderQueue = asyncio.LifoQueue[Any]
else:  # asyncpg's own queue, so its preference for connected holders is kept
    from asyncpg.pool import _PoolConnectionHolderQueue as _HolderQueue


class FairHolderQueue(_HolderQueue):
    """The pool's queue of free connection holders, served in arrival order."""

    _getters: Any  # asyncio.Queue's deque of parked futures

    async def get(self) -> Any:
        if not self._getters and not self.empty():  # nobody waits: no one to overtake
            return self.get_nowait()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._getters.append(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Handed a connection, then cancelled before running: pass it to the next one.
                self.put_nowait(waiter.result())
            else:
                try:
                    self._getters.remove(waiter)
                except ValueError:
                    pass
            raise

    def put_nowait(self, item: Any) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():  # a cancelled waiter is skipped
                waiter.set_result(item)
                return
        super().put_nowait(item)


def make_fair(pool: asyncpg.Pool) -> asyncpg.Pool:
    """Replace a freshly created pool's queue with a ``FairHolderQueue`` holding the same holders
    (asyncpg builds its queue in ``_initialize`` and offers no hook to choose its class)."""
    old = pool._queue  # type: ignore[attr-defined]
    assert not old._getters, "make_fair is for a pool nobody waits on yet"
    fair = FairHolderQueue(maxsize=old.maxsize)
    for holder in old._queue:  # the same holders, in the same (LIFO) order
        fair.put_nowait(holder)
    pool._queue = fair  # type: ignore[attr-defined]
    return pool
