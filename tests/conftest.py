"""Shared fixtures: one embedded PostgreSQL per test session, a fresh database per module."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from controlplane.db.database import create_database, migrate_dsn
from controlplane.db.embedded import EmbeddedPostgres


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("postgres")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def database_dsn(postgres: EmbeddedPostgres) -> str:
    """A freshly created, fully migrated database, one per test module."""
    name = f"test_{secrets.token_hex(6)}"
    await create_database(postgres.dsn(), name)
    dsn = postgres.dsn(name)
    await migrate_dsn(dsn)
    return dsn


@pytest.fixture(scope="module")
async def pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    db_pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=5)
    assert db_pool is not None
    try:
        yield db_pool
    finally:
        await db_pool.close()
