"""Migration 0012 on a database with the old wallet: kinds mapped (a call's usage by its
record's class), references backfilled deterministically, old credits still idempotent,
an opening entry for a balance the ledger did not explain, and the check holds after."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from controlplane.db.database import create_database
from controlplane.db.embedded import EmbeddedPostgres
from controlplane.db.migrate import available, migrate


@pytest.fixture
async def at_0011(postgres: EmbeddedPostgres) -> AsyncIterator[asyncpg.Connection]:
    name = f"wal_{secrets.token_hex(4)}"
    await create_database(postgres.dsn(), name)
    conn = await asyncpg.connect(postgres.dsn(name))
    await conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                       " applied_at timestamptz NOT NULL DEFAULT now(), checksum text)")
    for m in available():
        if m.version <= 11:
            await conn.execute(m.sql)
            await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                               m.version, m.name, m.checksum)
    try:
        yield conn
    finally:
        await conn.close()


async def test_old_entries_become_typed_referenced_and_balanced(at_0011: asyncpg.Connection) -> None:
    conn = at_0011
    await conn.execute("INSERT INTO partners (id, name, tier) VALUES ('p1', 'Old', 'BUSINESS'),"
                       " ('p2', 'Hand-set', 'BUSINESS')")
    await conn.execute("INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status)"
                       " VALUES ('t1', 'p1', 'T', 'oldt', 'a@b.co', 'ACTIVE')")
    for call_id, cls in (("call_tf", "toll_free"), ("call_intl", "international"), ("call_prem", "premium")):
        await conn.execute(
            "INSERT INTO call_records (id, linkedid, tenant_id, partner_id, direction, caller, callee,"
            " started_at, ended_at, duration_s, answered_s, billable_s, wholesale_billable_s, disposition,"
            " hangup_cause, call_class, notes, late) VALUES ($1, $1, 't1', 'p1', 'outbound', '101', '+1',"
            " now(), now(), 1, 1, 6, 6, 'ANSWERED', 16, $2, '{}', false)", call_id, cls)
    await conn.execute(
        """INSERT INTO wallet_entries (partner_id, kind, amount, call_id, reference, note) VALUES
           ('p1', 'credit', 10000000, NULL, 'wire-1', 'prepay'),
           ('p1', 'usage', -100, 'call_tf', NULL, NULL),
           ('p1', 'usage', -200, 'call_intl', NULL, NULL),
           ('p1', 'usage', -300, 'call_prem', NULL, NULL),
           ('p1', 'usage', -400, 'call_gone', NULL, NULL),
           ('p1', 'did_setup', -1000000, NULL, NULL, NULL)""")
    await conn.execute("INSERT INTO partner_wallets (partner_id, balance) VALUES ('p1', 8999000),"
                       " ('p2', 5000000)")
    applied = await migrate(conn)
    assert applied[0].version == 12
    rows = await conn.fetch("SELECT kind, amount, reference, tenant_id FROM wallet_entries WHERE partner_id = 'p1'"
                            " ORDER BY id")
    setup_id = await conn.fetchval("SELECT id FROM wallet_entries WHERE kind = 'setup_fee'")
    assert [tuple(r) for r in rows] == [
        ("manual_adjustment", 10_000_000, "adjust:wire-1", None),
        ("usage_toll_free", -100, "call:call_tf", "t1"),
        ("usage_international", -200, "call:call_intl", "t1"),
        ("usage_international", -300, "call:call_prem", "t1"),
        ("usage_local", -400, "call:call_gone", None),
        ("setup_fee", -1_000_000, f"legacy:setup_fee:{setup_id}", None)]
    # p2's balance was set by hand: one opening entry explains it.
    opening = await conn.fetchrow("SELECT kind, amount, reference FROM wallet_entries WHERE partner_id = 'p2'")
    assert tuple(opening) == ("manual_adjustment", 5_000_000, "opening:p2")
    assert await conn.fetch("SELECT * FROM wallet_mismatches()") == []
    # The old credit's retry (now adjust:<reference>) finds it: no second credit.
    dup = await conn.fetchval("INSERT INTO wallet_entries (partner_id, kind, amount, reference)"
                              " VALUES ('p1', 'manual_adjustment', 10000000, 'adjust:wire-1')"
                              " ON CONFLICT (partner_id, reference) DO NOTHING RETURNING id")
    assert dup is None
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("INSERT INTO wallet_entries (partner_id, kind, amount, reference)"
                           " VALUES ('p1', 'usage', -1, 'x')")
    with pytest.raises(asyncpg.NotNullViolationError):
        await conn.execute("INSERT INTO wallet_entries (partner_id, kind, amount) VALUES ('p1', 'refund', 1)")
