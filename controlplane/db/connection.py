"""The one spelling of "what a store runs its SQL on", for every store module."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection opened on its own or borrowed from the pool (``pool.acquire()`` hands out the
# proxy): the kinds that can hold a transaction, so the ones a write inside one must take.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
# Anything that runs one statement, the pool included (it borrows a connection for it).
Executor: TypeAlias = Connection | asyncpg.Pool
