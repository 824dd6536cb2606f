"""Hold a LISTEN on a pool connection for a worker that also polls.

A worker woken by NOTIFY must not depend on it: when the listening connection drops, the
worker's own polling covers until the LISTEN is back. This is the loop that keeps it back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg

from controlplane.db.errors import DB_ERRORS


async def listen_forever(pool: asyncpg.Pool, channel: str, notified: Callable[..., Any], *, period: float,
                         on_listening: Callable[[], None], on_lost: Callable[[], None]) -> None:
    """LISTEN on ``channel`` with ``notified`` (asyncpg's listener callback) until cancelled.

    ``on_listening`` runs each time the LISTEN is (re)established (notifications may have been
    missed before it); ``on_lost`` runs inside the ``except`` of a database error, so it may log
    with ``exc_info``; then the loop waits ``period`` seconds and listens again. The connection
    is checked every ``period`` seconds.
    """
    while True:
        try:
            async with pool.acquire() as conn:
                await conn.add_listener(channel, notified)
                on_listening()
                try:
                    while not conn.is_closed():
                        await asyncio.sleep(period)
                finally:
                    if not conn.is_closed():
                        await conn.remove_listener(channel, notified)
        except DB_ERRORS:
            on_lost()
            await asyncio.sleep(period)
