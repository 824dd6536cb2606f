"""Plain, ordered SQL migrations, each applied in its own transaction.

Files are ``NNNN_name.sql`` beside this module; applied versions are recorded in
``schema_migrations``. A database that has versions this code does not know is
refused: running old code on a newer schema corrupts data quietly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

log = structlog.get_logger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Serialises concurrent migrators (daemon start and `controlplane migrate`).
_LOCK_ID = 0x6370_6D69  # "cpmi"


class SchemaTooNewError(Exception):
    """The database was migrated by a newer version of the code."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    found = []
    for entry in resources.files("controlplane.db.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply pending migrations; return those applied by this call."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        known = available()
        newest_known = known[-1].version if known else 0
        unknown = sorted(v for v in applied if v > newest_known)
        if unknown:
            raise SchemaTooNewError(
                f"database schema is at version {max(unknown)}, this code knows up to "
                f"{newest_known}: upgrade the code before starting it on this database"
            )
        done = []
        for migration in known:
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version, migration.name,
                )
            log.info("db.migrated", version=migration.version, name=migration.name)
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
