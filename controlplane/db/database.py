"""Where the database is: an external DSN from config, or the embedded server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from controlplane.config import Config
from controlplane.db.embedded import EmbeddedPostgres
from controlplane.db.migrate import migrate

DATABASE_NAME = "controlplane"


@dataclass
class Database:
    """The database the daemon uses, and whether this process started its server."""

    dsn: str
    embedded: EmbeddedPostgres | None = None
    started_here: bool = False

    def stop(self) -> None:
        if self.embedded is not None and self.started_here:
            self.embedded.stop()


async def open_database(config: Config) -> Database:
    """Find or start the server and make sure our database exists."""
    if config.database.dsn:
        return Database(config.database.dsn)
    embedded = EmbeddedPostgres(config.data_path / "postgres")
    started = await asyncio.to_thread(embedded.start)
    await create_database(embedded.dsn(), DATABASE_NAME)
    return Database(embedded.dsn(DATABASE_NAME), embedded, started)


async def create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (a round trip per release): no code of
    ours leaves session state behind (no SET, no session lock, no open cursor; the
    one LISTEN is removed before its connection goes back). asyncpg still ends any
    open transaction itself."""


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, reset=_keep_session)
    assert pool is not None
    return pool


async def migrate_dsn(dsn: str) -> int:
    """Apply pending migrations; return how many were applied."""
    conn = await asyncpg.connect(dsn)
    try:
        return len(await migrate(conn))
    finally:
        await conn.close()
