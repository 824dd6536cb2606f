"""The pool's queue serves waiters in arrival order: a newcomer never takes a released
connection from someone already waiting, and a waiter cancelled after being handed one
passes it on (none is lost)."""

from __future__ import annotations

import asyncio

from controlplane.db.fair_pool import FairHolderQueue


class Holder(str):
    """Stands for asyncpg's connection holder (its queue prefers connected ones)."""

    def is_connected(self) -> bool:
        return True


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_released_item_goes_to_the_longest_waiter_not_to_a_newcomer() -> None:
    queue = FairHolderQueue(maxsize=2)
    got: list[tuple[str, object]] = []

    async def take(name: str) -> None:
        got.append((name, await queue.get()))

    first, second = asyncio.create_task(take("first")), asyncio.create_task(take("second"))
    await _settle()  # both parked, first ahead
    # The newcomer is scheduled before the release: with asyncio's queue it runs before the woken
    # waiter, finds the item and takes it, and "first" parks again behind "second".
    newcomer = asyncio.create_task(take("newcomer"))
    queue.put_nowait(Holder("a"))
    await _settle()
    assert got == [("first", "a")]
    queue.put_nowait(Holder("b"))
    queue.put_nowait(Holder("c"))
    await asyncio.gather(first, second, newcomer)
    assert got == [("first", "a"), ("second", "b"), ("newcomer", "c")]
    assert queue.empty()


async def test_free_items_are_taken_at_once_when_nobody_waits() -> None:
    queue = FairHolderQueue(maxsize=2)
    queue.put_nowait(Holder("a"))
    queue.put_nowait(Holder("b"))
    assert await queue.get() == "b"  # LIFO among free items, as asyncpg's queue
    assert await queue.get() == "a"
    assert queue.empty()


async def test_a_waiter_cancelled_after_the_hand_over_passes_the_item_on() -> None:
    queue = FairHolderQueue(maxsize=1)
    doomed = asyncio.create_task(queue.get())
    heir = asyncio.create_task(queue.get())
    await _settle()
    queue.put_nowait(Holder("x"))  # handed to doomed, which has not run yet
    doomed.cancel()
    await _settle()
    assert doomed.cancelled()
    assert await asyncio.wait_for(heir, 1) == "x"


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    queue = FairHolderQueue(maxsize=1)
    gone = asyncio.create_task(queue.get())
    await _settle()
    gone.cancel()
    await _settle()
    queue.put_nowait(Holder("x"))  # nobody waits now: the item stays free
    assert queue.qsize() == 1
    assert await queue.get() == "x"
