"""Plain, ordered SQL migrations, each applied in its own transaction.

Files are ``NNNN_name.sql`` beside this module; applied versions are recorded in
``schema_migrations`` with the SHA-256 of the file as applied. A database that has
versions this code does not know is refused: running old code on a newer schema
corrupts data quietly. So is a migration whose file changed after it was applied:
the database does not have what the file now says, and re-running it is not an
option (a change goes into a new migration). Databases from before checksums get
theirs recorded on their first start with this code.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

log = structlog.get_logger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Serialises concurrent migrators (daemon start and `controlplane migrate`).
_LOCK_ID = 0x6370_6D69  # "cpmi"


class MigrationError(Exception):
    """The database cannot be migrated by this code; the message says what to do."""


class SchemaTooNewError(MigrationError):
    """The database was migrated by a newer version of the code."""


class MigrationEditedError(MigrationError):
    """A migration file differs from the one applied to this database."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


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
        await conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text")
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        applied = {r["version"] for r in rows}
        known = available()
        newest_known = known[-1].version if known else 0
        unknown = sorted(v for v in applied if v > newest_known)
        if unknown:
            raise SchemaTooNewError(
                f"database schema is at version {max(unknown)}, this code knows up to "
                f"{newest_known}: upgrade the code before starting it on this database"
            )
        await _check_applied(conn, known, {r["version"]: r["checksum"] for r in rows})
        done = []
        for migration in known:
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version, migration.name, migration.checksum,
                )
            log.info("db.migrated", version=migration.version, name=migration.name)
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)


async def _check_applied(conn: asyncpg.Connection, known: list[Migration],
                         recorded: dict[int, str | None]) -> None:
    """Refuse edited migrations; record the checksums a database from before them lacks."""
    edited = [m for m in known if recorded.get(m.version) not in (None, m.checksum)]
    if edited:
        names = ", ".join(m.filename for m in edited)
        raise MigrationEditedError(
            f"migration {names} changed after it was applied to this database (its SHA-256 differs from "
            "the one recorded in schema_migrations): restore the file as it was and put the change in a "
            "new migration")
    missing = [m for m in known if m.version in recorded and recorded[m.version] is None]
    if missing:
        await conn.executemany("UPDATE schema_migrations SET checksum = $2 WHERE version = $1",
                               [(m.version, m.checksum) for m in missing])
        log.info("db.checksums_recorded", versions=[m.version for m in missing])
