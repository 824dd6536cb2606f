"""One localstripe and one app per test module (tests/support/account_world.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from account_world import World, world_for
from localstripe_support import LocalStripe, localstripe  # noqa: F401  (the module's fixture)


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool, localstripe: LocalStripe) -> AsyncIterator[World]:
    async with world_for(pool, localstripe) as w:
        yield w
