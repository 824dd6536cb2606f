"""Fixtures of the webhook integration tests (helpers live in webhooks_support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest


@pytest.fixture(scope="module")
async def wpool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """Room for a worker (listen, dispatch, claim, record) and the test's own queries."""
    pool = await asyncpg.create_pool(database_dsn, min_size=2, max_size=12)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()
