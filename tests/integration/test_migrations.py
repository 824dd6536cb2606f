"""Migrations against a real (embedded) PostgreSQL."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from controlplane.db.database import create_database
from controlplane.db.embedded import EmbeddedPostgres
from controlplane.db.migrate import SchemaTooNewError, available, migrate


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
