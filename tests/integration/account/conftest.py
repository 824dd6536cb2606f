"""One localstripe and one app per test module (tests/support/account_world.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from account_world import World, world_for
from localstripe_support import LocalStripe, localstripe_server


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    with localstripe_server() as server:
        yield server


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool, localstripe: LocalStripe) -> AsyncIterator[World]:
    async with world_for(pool, localstripe) as w:
        yield w
