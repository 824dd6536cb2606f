"""The API tests' app fixture (helpers live in api_support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from api_support import Api, api_for


@pytest.fixture(scope="module")
async def api(pool: asyncpg.Pool) -> AsyncIterator[Api]:
    async with api_for(pool) as client:
        yield client
