"""Migrations against a real (embedded) PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from controlplane.db.database import create_database
from controlplane.db.embedded import EmbeddedPostgres
from controlplane.db.migrate import MigrationEditedError, SchemaTooNewError, available, migrate


@pytest.fixture
async def empty_db(postgres: EmbeddedPostgres) -> str:
    name = f"mig_{secrets.token_hex(4)}"
    await create_database(postgres.dsn(), name)
    return postgres.dsn(name)


async def test_applies_all_in_order_then_nothing(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        first = await migrate(conn)
        assert [m.version for m in first] == [m.version for m in available()]
        assert await migrate(conn) == []
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in available()]
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
        assert {"partners", "tenants", "extensions", "dids"} <= tables
    finally:
        await conn.close()


async def test_refuses_a_database_newer_than_the_code(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate(conn)
        newest = available()[-1].version
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, 'future')", newest + 1)
        with pytest.raises(SchemaTooNewError, match=f"version {newest + 1}"):
            await migrate(conn)
    finally:
        await conn.close()


async def test_schema_rejects_what_asterisk_must_never_see(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO partners (id, name, tier) VALUES ('p1', 'P', 'STARTER')")
    for prefix in ["ab", "ACME", "acme;", "acme\n", "a" * 13]:
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute(
                "INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status)"
                " VALUES ($1, 'p1', 'T', $2, 'b@example.com', 'ACTIVE')",
                f"t_{secrets.token_hex(3)}", prefix,
            )


async def test_an_edited_applied_migration_stops_start_up(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate(conn)
        first = available()[0]
        # What a file edited after it was applied looks like: the recorded digest is not the file's.
        await conn.execute("UPDATE schema_migrations SET checksum = $1 WHERE version = $2", "0" * 64, first.version)
        with pytest.raises(MigrationEditedError, match=f"migration {first.filename} changed after it was applied"):
            await migrate(conn)
    finally:
        await conn.close()


async def test_a_database_from_before_checksums_gets_them_on_first_start(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate(conn)
        await conn.execute("UPDATE schema_migrations SET checksum = NULL")
        assert await migrate(conn) == []
        recorded = dict(await conn.fetch("SELECT version, checksum FROM schema_migrations"))
        assert recorded == {m.version: m.checksum for m in available()}
    finally:
        await conn.close()


def test_an_edited_migration_is_one_line_from_the_command(empty_db: str, tmp_path: Path) -> None:
    async def tamper() -> None:
        conn = await asyncpg.connect(empty_db)
        try:
            await migrate(conn)
            await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 2")
        finally:
            await conn.close()

    asyncio.run(tamper())
    result = subprocess.run([sys.executable, "-m", "controlplane", "migrate"], capture_output=True, text=True,
                            env={**os.environ, "CONTROLPLANE_DATABASE__DSN": empty_db,
                                 "CONTROLPLANE_DATA_DIR": str(tmp_path)}, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"controlplane: migration {available()[1].filename} changed after it was applied"), result.stderr
