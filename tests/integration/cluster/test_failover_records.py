"""Failover records on the real PostgreSQL: the calls in progress of a node whose heartbeat
expired are recorded by the survivors exactly once (two survivors racing), ended at the time of
death, flagged, and charged once; a live node's calls and a node that came back are left alone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
from wallet_support import LONG_AGO

from controlplane.account import store as account_store
from controlplane.calls import store as calls_store
from controlplane.calls.failover import record_dead_nodes
from controlplane.calls.recorder import CallRecorder
from controlplane.db.database import create_pool
from controlplane.profiles.models import AssignmentBody
from controlplane.profiles.services import ProfileServices
from controlplane.tenants.applier import Applier
from controlplane.tenants.models import PartnerCreate, PartnerTier, TenantCreate
from controlplane.tenants.services import TenantServices
from controlplane.wallet import store as wallet_store
from controlplane.wallet.models import Entry, EntryKind
from provisioning.model import PartnerStatus

LOCAL = "+15015550100"


async def billable_tenant(pool: asyncpg.Pool, name: str) -> tuple[str, str]:
    tenants = TenantServices(pool, Applier(pool))
    partner = (await tenants.create_partner(PartnerCreate(name=name, tier=PartnerTier.BUSINESS))).id
    tenant = (await tenants.create_tenant(partner, TenantCreate(name=name, billing_email="a@b.co",
                                                                sip_prefix=name))).id
    await ProfileServices(pool).assign(partner, tenant, AssignmentBody(per_minute_micros=50_000))
    async with pool.acquire() as conn, conn.transaction():
        await account_store.set_status(conn, partner, PartnerStatus.ACTIVE, activated_at=LONG_AGO)
        await wallet_store.post(conn, Entry(partner, EntryKind.MANUAL_ADJUSTMENT, 100_000_000, f"adjust:{name}"))
    return partner, tenant


async def call_up(pool: asyncpg.Pool, linkedid: str, tenant: str, partner: str, started: datetime,
                  answered: datetime | None) -> None:
    """What the node's recorder wrote when the call started (and was answered)."""
    async with pool.acquire() as conn:
        assert await calls_store.insert_active(conn, linkedid, linkedid, tenant, partner, False, LOCAL, "101",
                                               started)
        if answered is not None:
            assert await calls_store.mark_answered(conn, linkedid, answered)


async def heartbeat(pool: asyncpg.Pool, node: str, expires_in_s: float) -> datetime:
    expires: datetime = await pool.fetchval(
        "INSERT INTO leases (name, holder, node_id, acquired_at, renewed_at, expires_at)"
        " VALUES ($1, $1, $2, now(), now(), now() + make_interval(secs => $3))"
        " ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at RETURNING expires_at",
        f"node:{node}", node, expires_in_s)
    return expires


async def test_a_dead_nodes_calls_are_recorded_once_at_its_time_of_death(database_dsn: str) -> None:
    node_a = await create_pool(database_dsn, 1, 3, node_id="fo-a")
    node_b = await create_pool(database_dsn, 1, 3, node_id="fo-b")
    survivor_c = await create_pool(database_dsn, 1, 3, node_id="fo-c")
    try:
        partner, tenant = await billable_tenant(node_a, "fover")
        now = datetime.now(UTC)
        for n in range(5):  # answered calls up on node A
            await call_up(node_a, f"fo-a-{n}", tenant, partner, now - timedelta(seconds=90),
                          now - timedelta(seconds=80))
        await call_up(node_a, "fo-a-ringing", tenant, partner, now - timedelta(seconds=5), None)
        await call_up(node_b, "fo-b-live", tenant, partner, now - timedelta(seconds=20), now - timedelta(seconds=10))
        assert await node_a.fetchval("SELECT node_id FROM calls_active WHERE linkedid = 'fo-a-0'") == "fo-a"
        died_at = await heartbeat(node_a, "fo-a", -1.0)  # A's heartbeat expired a second ago
        await heartbeat(node_b, "fo-b", 30.0)  # B is alive
        balance_before = await node_a.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1", partner)

        # Two survivors race (as if both held the failover job): each call is recorded once.
        written = await asyncio.gather(
            record_dead_nodes(node_b, CallRecorder(node_b), "fo-b", "daemon-b"),
            record_dead_nodes(survivor_c, CallRecorder(survivor_c), "fo-c", "daemon-c"))
        assert sum(written) == 6, written
        rows = await node_b.fetch("SELECT linkedid, ended_at, node_id, disposition, answered_s, late"
                                  " FROM call_records WHERE linkedid LIKE 'fo-a-%' ORDER BY linkedid")
        assert len(rows) == 6
        assert {r["ended_at"] for r in rows} == {died_at}
        assert {r["node_id"] for r in rows} == {"fo-a"}
        answered = [r for r in rows if r["linkedid"] != "fo-a-ringing"]
        assert {r["disposition"] for r in answered} == {"ANSWERED"}
        assert all(80 <= r["answered_s"] <= 90 for r in answered), [r["answered_s"] for r in answered]
        flagged = await node_b.fetch("SELECT linkedid, node_id, died_at FROM failover_records")
        assert sorted(r["linkedid"] for r in flagged) == [r["linkedid"] for r in rows]
        assert {(r["node_id"], r["died_at"]) for r in flagged} == {("fo-a", died_at)}
        assert await node_b.fetchval("SELECT count(*) FROM calls_active WHERE node_id = 'fo-a'") == 0
        assert await node_b.fetchval("SELECT count(*) FROM calls_active WHERE node_id = 'fo-b'") == 1
        debits = await node_b.fetch("SELECT reference, amount FROM wallet_entries WHERE partner_id = $1"
                                    " AND reference LIKE 'call:%'", partner)
        assert len(debits) == len({r["reference"] for r in debits}) == 5  # the answered ones, once each
        balance = await node_b.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1", partner)
        assert balance == balance_before + sum(int(r["amount"]) for r in debits) < balance_before

        # Again (the next round, or the dead node's CDRs arriving late): nothing more.
        assert await record_dead_nodes(node_b, CallRecorder(node_b), "fo-b", "daemon-b") == 0
        summary = await node_b.fetchval("SELECT count(*) FROM call_records WHERE linkedid LIKE 'fo-a-%'")
        assert summary == 6
    finally:
        for pool in (node_a, node_b, survivor_c):
            await pool.close()


async def test_a_node_that_came_back_keeps_its_calls(database_dsn: str) -> None:
    node_d = await create_pool(database_dsn, 1, 3, node_id="fo-d")
    try:
        partner, tenant = await billable_tenant(node_d, "fback")
        now = datetime.now(UTC)
        await call_up(node_d, "fo-d-1", tenant, partner, now - timedelta(seconds=30), now - timedelta(seconds=25))
        await heartbeat(node_d, "fo-d", 30.0)  # renewed: alive
        assert await record_dead_nodes(node_d, CallRecorder(node_d), "fo-e", "daemon-e") == 0
        assert await node_d.fetchval("SELECT count(*) FROM calls_active WHERE linkedid = 'fo-d-1'") == 1
        assert await node_d.fetchval("SELECT count(*) FROM failover_records WHERE linkedid = 'fo-d-1'") == 0
    finally:
        await node_d.close()
