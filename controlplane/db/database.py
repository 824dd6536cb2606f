"""Where the database is: an external DSN from config, or the embedded server."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from controlplane.config import Config
from controlplane.db.embedded import EmbeddedPostgres
from controlplane.db.fair_pool import make_fair
from controlplane.db.migrate import migrate

DATABASE_NAME = "controlplane"
OWNER_FILE = "owner.pid"  # in <data_dir>/postgres: the daemon that stops the embedded server
log = structlog.get_logger(__name__)


@dataclass
class Database:
    """The database the daemon uses, and whether this process started its server."""

    dsn: str
    embedded: EmbeddedPostgres | None = None
    started_here: bool = False

    def stop(self) -> None:
        if self.embedded is not None and self.started_here:
            self.embedded.stop()
            (self.embedded.data_dir / OWNER_FILE).unlink(missing_ok=True)


async def open_database(config: Config, *, claim: bool = False) -> Database:
    """Find or start the server and make sure our database exists.

    With ``claim`` (the daemon) the embedded server is this process's to stop when it
    started it, or when the daemon that started it is gone (a crash left it running):
    the owner file in the server's directory names the live owner's pid.
    """
    if config.database.dsn:
        return Database(config.database.dsn)
    embedded = EmbeddedPostgres(config.data_path / "postgres")
    started = await asyncio.to_thread(embedded.start)
    await create_database(embedded.dsn(), DATABASE_NAME)
    owned = started
    if claim:
        owned = started or _orphaned(embedded.data_dir / OWNER_FILE)
        if owned:
            (embedded.data_dir / OWNER_FILE).write_text(f"{os.getpid()}\n")
            if not started:
                log.info("postgres.adopted", pgdata=str(embedded.pgdata), detail="left by a daemon that is gone")
    return Database(embedded.dsn(DATABASE_NAME), embedded, owned)


def _orphaned(owner_file: Path) -> bool:
    """True when the owner file names a process that no longer runs (no file: not ours)."""
    try:
        pid = int(owner_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return pid == os.getpid()


def running_dsn(config: Config) -> str | None:
    """The daemon's database without starting anything: ``database.dsn``, or the embedded
    server already running in the data directory (None when it is not)."""
    if config.database.dsn:
        return config.database.dsn
    embedded = EmbeddedPostgres(config.data_path / "postgres")
    return embedded.dsn(DATABASE_NAME) if embedded.running_port() is not None else None


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


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10, *, node_id: str | None = None) -> asyncpg.Pool:
    """``node_id``: the session setting ``controlplane.node_id`` of every connection, which rows
    such as ``calls_active`` take as their node (migration 0029, ``controlplane_node()``)."""
    settings = {"controlplane.node_id": node_id} if node_id else None
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, reset=_keep_session,
                                     server_settings=settings)
    assert pool is not None
    return make_fair(pool)  # connections in arrival order: the API's p99 (fair_pool.py)


async def migrate_dsn(dsn: str) -> int:
    """Apply pending migrations; return how many were applied."""
    conn = await asyncpg.connect(dsn)
    try:
        return len(await migrate(conn))
    finally:
        await conn.close()
