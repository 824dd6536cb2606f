"""Two nodes, two daemons, one PostgreSQL (issue 19): a request that suspends tenant A, taken
by daemon B, ends A's call on node A within 2 s. Real parts: two Asterisk instances (the
project's runner, as every e2e), two whole daemons in-process, a SIPp carrier UAS, the phone a
small digest UAC (test_limits.Uac). No Kamailio: the phone calls node A's Asterisk directly."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from datetime import UTC, datetime
from collections.abc import AsyncIterator

import asyncpg
import pytest
from harness import Beside, calls_config, daemon_beside, free_port
from cdr_ingest.classify import CallClass, Direction
from cdr_ingest.pricing import partner_rate
from cdr_ingest.rating import price
from cdr_ingest.tiers import Tier
from tenants_e2e import uas_scenario
from test_limits import Uac, uas
from wallet_support import active_funded, fund

from controlplane.config import AccountConfig, HttpConfig, NodeConfig, WebhooksConfig
from controlplane.limits.http import limit_services
from controlplane.limits.models import LimitsBody
from controlplane.profiles.models import AssignmentBody
from controlplane.profiles.services import ProfileServices
from controlplane.tenants.http import numbering_services, tenant_services
from controlplane.tenants.models import (ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate, TenantStatus,
                                         TenantUpdate)

pytestmark = [pytest.mark.e2e]
NUMBER = "5015550100"
SERVICE_TOKEN, PLATFORM_TOKEN = "svc-" + secrets.token_hex(16), "plt-" + secrets.token_hex(16)


def node_config(tmp: object, node: str, peer: str, dsn: str):  # type: ignore[no-untyped-def]
    return calls_config(tmp, instance=f"{node.replace('-', '')}{os.getpid()}", dsn=dsn,  # type: ignore[arg-type]
                        http=HttpConfig(port=free_port(), service_token=SERVICE_TOKEN,
                                        platform_token=PLATFORM_TOKEN),
                        webhooks=WebhooksConfig(secret_key="k" * 44),
                        node=NodeConfig(id=node, peers=(peer,), lease_seconds=3.0),
                        # The account's jobs run once at start, then not during the module: unit fees
                        # would move the balance the wallet race counts.
                        account=AccountConfig(unit_fee_interval_s=86400.0, trial_expiry_interval_s=86400.0))


@pytest.fixture(scope="module")
async def nodes(tmp_path_factory: pytest.TempPathFactory, database_dsn: str,
                pool: asyncpg.Pool) -> AsyncIterator[tuple[Beside, Beside]]:
    a = node_config(tmp_path_factory.mktemp("node-a"), "node-a", "node-b", database_dsn)
    b = node_config(tmp_path_factory.mktemp("node-b"), "node-b", "node-a", database_dsn)
    async with daemon_beside(a, database_dsn) as node_a, daemon_beside(b, database_dsn) as node_b:
        for set_id, beside in enumerate((node_a, node_b), start=1):
            await pool.execute("INSERT INTO nodes (id, set_id, sip_host, sip_port) VALUES ($1, $2, '127.0.0.1', $3)"
                               " ON CONFLICT DO NOTHING", beside.config.node.id, set_id,
                               beside.config.asterisk.sip_port)
        for beside in (node_a, node_b):
            beside.procs.append(uas(beside.config.carrier.port, uas_scenario(bye_timeout_ms=300_000)))
        yield node_a, node_b


async def phone_on(pool: asyncpg.Pool, nodes: tuple[Beside, Beside], partner: str, prefix: str,
                   node: Beside) -> tuple[str, str, str]:
    """A tenant pinned to ``node`` with extension 101: (tenant id, SIP user, password)."""
    services = nodes[0].app[tenant_services]
    tenant = (await services.create_tenant(partner, TenantCreate(name=prefix, billing_email="x@y.co",
                                                                 sip_prefix=prefix))).id
    await pool.execute("INSERT INTO tenant_nodes (tenant_id, node_id) VALUES ($1, $2)"
                       " ON CONFLICT (tenant_id) DO UPDATE SET node_id = $2", tenant, node.config.node.id)
    created = await nodes[0].app[numbering_services].create_extension(
        partner, tenant, ExtensionCreate(number="101", display_name="U"))
    await ProfileServices(pool).assign(partner, tenant, AssignmentBody(per_minute_micros=50_000))
    for beside in nodes:  # every node carries every tenant's dialplan (docs/scale.md)
        await beside.app[tenant_services].applier.apply_dialplan(force=True)
    return tenant, created.sip_username, created.secrets.sip_password


async def test_a_suspension_sent_to_daemon_b_ends_the_call_on_node_a(
        nodes: tuple[Beside, Beside], pool: asyncpg.Pool) -> None:
    node_a, node_b = nodes
    partner = (await node_a.app[tenant_services].create_partner(
        PartnerCreate(name="Nodes", tier=PartnerTier.BUSINESS))).id
    await active_funded(pool, partner, 100_000_000)
    tenant, user, password = await phone_on(pool, nodes, partner, "nta", node_a)
    await node_a.app[limit_services].put(partner, tenant, LimitsBody(monthly_minutes=100))
    uac = Uac(node_a.config.asterisk.sip_port, user, password, NUMBER, hold_s=60)
    call = asyncio.create_task(asyncio.to_thread(uac.run))
    assert await asyncio.to_thread(uac.answered.wait, 20), "the call on node A was not answered"
    node_of_call = None
    for _ in range(50):  # the recorder writes the call's row behind the events (batched)
        node_of_call = await pool.fetchval("SELECT node_id FROM calls_active WHERE tenant_id = $1", tenant)
        if node_of_call:
            break
        await asyncio.sleep(0.1)
    assert node_of_call == "node-a"

    suspended_at = time.monotonic()
    await node_b.app[tenant_services].update_tenant(partner, tenant, TenantUpdate(status=TenantStatus.SUSPENDED))
    result = await asyncio.wait_for(call, 30)
    assert result.ended_by == "asterisk", result
    assert result.ended_at is not None and result.ended_at - suspended_at < 2.0, \
        result.ended_at - suspended_at  # type: ignore[operator]
    # Daemon B never had the call: node A's admission ended it (it knew the channel).
    assert tenant not in node_b.app[limit_services].engine.tenants or \
        not node_b.app[limit_services].engine.tenants[tenant].calls
    assert node_a.app[limit_services].engine.tenants[tenant].status == "SUSPENDED"

    async def recorded() -> asyncpg.Record | None:
        return await pool.fetchrow("SELECT node_id, disposition FROM call_records WHERE tenant_id = $1", tenant)
    deadline = time.monotonic() + 15
    row = await recorded()
    while row is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        row = await recorded()
    assert row is not None and row["node_id"] == "node-a" and row["disposition"] == "ANSWERED", row
    assert await pool.fetchval("SELECT count(*) FROM call_records WHERE tenant_id = $1", tenant) == 1


async def test_twenty_calls_on_two_nodes_against_sixty_seconds_of_one_wallet(
        nodes: tuple[Beside, Beside], pool: asyncpg.Pool) -> None:
    """Two tenants of one partner on different nodes, 10 calls each at once, 60 s of wholesale
    credit: the calls admitted overshoot it by at most one increment, across both daemons."""
    node_a, node_b = nodes
    partner = (await node_a.app[tenant_services].create_partner(
        PartnerCreate(name="Race", tier=PartnerTier.BUSINESS))).id
    await active_funded(pool, partner, 0)
    on_a = await phone_on(pool, nodes, partner, "raca", node_a)
    on_b = await phone_on(pool, nodes, partner, "racb", node_b)
    rate = partner_rate(Tier.BUSINESS, CallClass.LOCAL, Direction.OUTBOUND, "1" + NUMBER, datetime.now(UTC))
    assert rate is not None
    credit = price(rate, 60)
    increment = price(rate, rate.min_seconds + rate.increment_seconds) - price(rate, rate.min_seconds)
    engines = [beside.app[limit_services].engine for beside in nodes]
    for engine, (tenant, _, _) in zip(engines, (on_a, on_b), strict=True):
        await engine.tenant(tenant)  # known to each node's admission: the credit arrives by notice
    await fund(pool, partner, credit)
    deadline = time.monotonic() + 10
    while not all(e.partners[partner].balance_micros == credit for e in engines):
        assert time.monotonic() < deadline, "the credit's notice did not reach both daemons"
        await asyncio.sleep(0.05)

    uacs = [Uac(beside.config.asterisk.sip_port, user, password, NUMBER, hold_s=90)
            for beside, (_, user, password) in [(node_a, on_a), (node_b, on_b)] * 10]
    results = await asyncio.gather(*(asyncio.to_thread(u.run) for u in uacs))
    codes = sorted(r.code for r in results)
    assert codes.count(200) >= 1 and set(codes) <= {200, 403}, codes
    tenants = [on_a[0], on_b[0]]

    async def recorded() -> list[asyncpg.Record] | None:
        rows = await pool.fetch("SELECT wholesale_micros, node_id, linkedid FROM call_records"
                                " WHERE tenant_id = ANY($1::text[]) AND disposition = 'ANSWERED'", tenants)
        return rows if len(rows) == codes.count(200) else None
    deadline = time.monotonic() + 20
    rows = await recorded()
    while rows is None:
        assert time.monotonic() < deadline, ("the admitted calls' records", codes, [
            (r.code, r.ended_by, r.answered_at and r.ended_at and r.ended_at - r.answered_at) for r in results],
            [dict(r) for r in await pool.fetch("SELECT disposition, node_id, billable_s, wholesale_micros FROM"
                                               " call_records WHERE tenant_id = ANY($1::text[])", tenants)])
        await asyncio.sleep(0.2)
        rows = await recorded()
    billed = sum(r["wholesale_micros"] or 0 for r in rows)
    assert 0 < billed <= credit + increment, (billed, credit, increment, codes)
    # Each node's Asterisk prefixes its uniqueids with the node (systemname): two Asterisks started
    # in the same second would otherwise hand out the same linkedids, and records would collide.
    assert all(r["linkedid"].startswith(r["node_id"] + "-") for r in rows), [dict(r) for r in rows]
    everything = await pool.fetch("SELECT linkedid, node_id FROM call_records WHERE tenant_id = ANY($1::text[])",
                                  tenants)
    assert len(everything) == 20 and len({r["linkedid"] for r in everything}) == 20, len(everything)
    drawn = -await pool.fetchval("SELECT COALESCE(sum(amount), 0) FROM wallet_entries"
                                 " WHERE partner_id = $1 AND kind LIKE 'usage_%'", partner)
    assert drawn == billed, (drawn, billed)


async def test_z_node_a_dies_and_node_b_records_its_calls_once(nodes: tuple[Beside, Beside],
                                                                pool: asyncpg.Pool) -> None:
    """Last (it kills node A): kill -9 of node A's Asterisk, and node A's daemon gone without a
    word (its connections cut, its tasks stopped, nothing released). Node B's daemon records
    A's answered calls, ended at A's detected time of death, flagged, once, charged once."""
    node_a, _ = nodes
    partner = (await node_a.app[tenant_services].create_partner(
        PartnerCreate(name="Dies", tier=PartnerTier.BUSINESS))).id
    await active_funded(pool, partner, 100_000_000)
    tenant, user, password = await phone_on(pool, nodes, partner, "ndie", node_a)
    uacs = [Uac(node_a.config.asterisk.sip_port, user, password, NUMBER, hold_s=40) for _ in range(5)]
    calls = [asyncio.create_task(asyncio.to_thread(u.run)) for u in uacs]
    for u in uacs:
        assert await asyncio.to_thread(u.answered.wait, 20), "a call on node A was not answered"
    deadline = time.monotonic() + 10
    while await pool.fetchval("SELECT count(*) FROM calls_active WHERE tenant_id = $1 AND answered_at IS NOT NULL"
                              " AND node_id = 'node-a'", tenant) < 5:
        assert time.monotonic() < deadline, "the calls' in-progress rows"
        await asyncio.sleep(0.1)

    node_a.runner.kill()  # kill -9 of node A's Asterisk: no CDR will ever come
    daemon = node_a.daemon
    assert daemon.pool is not None
    # Node A's daemon dies with it. In-process, its jobs stop first (they would otherwise spin on
    # a closed pool in this test process); its heartbeat is not released by that, only leases of
    # once-only jobs are (a real kill -9 leaves those to expire: tests/integration/cluster).
    for task in daemon.tasks:
        task.cancel()
    await asyncio.gather(*daemon.tasks, return_exceptions=True)
    daemon.tasks.clear()
    daemon.pool.terminate()
    killed = time.monotonic()

    deadline = time.monotonic() + 30
    while await pool.fetchval("SELECT count(*) FROM failover_records f JOIN call_records r USING (linkedid)"
                              " WHERE r.tenant_id = $1", tenant) < 5:
        assert time.monotonic() < deadline, "node B did not record node A's calls"
        await asyncio.sleep(0.2)
    recorded_after = time.monotonic() - killed
    lease = node_a.config.node.lease_seconds
    assert recorded_after < 2 * lease + 5, recorded_after  # heartbeat TTL + the job's lease + its period
    await asyncio.sleep(3)  # another round of every survivor's jobs: nothing more
    rows = await pool.fetch("SELECT r.linkedid, r.node_id, r.ended_at, r.disposition, f.died_at, f.recorded_by"
                            " FROM call_records r JOIN failover_records f USING (linkedid) WHERE r.tenant_id = $1",
                            tenant)
    assert len(rows) == 5 and await pool.fetchval(
        "SELECT count(*) FROM call_records WHERE tenant_id = $1", tenant) == 5
    assert {r["node_id"] for r in rows} == {"node-a"} and {r["disposition"] for r in rows} == {"ANSWERED"}
    assert len({r["died_at"] for r in rows}) == 1 and all(r["ended_at"] == r["died_at"] for r in rows)
    assert all(r["recorded_by"].startswith("node-b:") for r in rows), [r["recorded_by"] for r in rows]
    assert await pool.fetchval("SELECT count(*) FROM calls_active WHERE tenant_id = $1", tenant) == 0
    debits = await pool.fetch("SELECT reference FROM wallet_entries WHERE partner_id = $1 AND kind LIKE 'usage_%'",
                              partner)
    assert len(debits) == len({d["reference"] for d in debits}) == 5
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
