"""Node A dies under load, behind the edge (issue 19, Must show): 20 outbound calls of tenant
alpha up on node A through Kamailio, then kill -9 of node A's Asterisk and its daemon gone
without a word. Alpha's phone registers again and a new call succeeds through node B (the time
is printed; docs/scale.md states the bound), node B's daemon records the 20 calls exactly once,
flagged as ended by failover, each debited once, and the wallet and usage agree.

The world is test_edge's (Kamailio + two Asterisk nodes + two daemons, one PostgreSQL), a fresh
one for this module, except that node A's daemon is a separate OS process (``controlplane serve``)
killed with SIGKILL: its HTTP listener, Asterisk links and heartbeat die with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from edge_support import dialog_call_scenario, sipp_uas
from tenants_e2e import sipp_failure, uas_scenario
from process_support import DaemonProcess
from test_edge import Topology, edge_world, moved_and_called, records
from wallet_support import ledger_mismatches

pytestmark = [pytest.mark.e2e]
NUMBER = "5015550100"  # a local US number: priced, so each call is a wallet debit
CALLS = 20
PHONE_GAP_S = 0.05
# Deadlines, not speed targets (figures are printed; docs/scale.md states them).
ANSWERED_DEADLINE_S = 60.0
# The dead node's heartbeat expires after node.lease_seconds (10 s here), then the survivor
# holding calls.failover records within its own lease and period.
RECORDED_DEADLINE_S = 60.0
LEASE_SECONDS = 10.0  # node.lease_seconds (the default): the heartbeat renews every third of it


async def answered_on_node_a(pool: asyncpg.Pool, tenant: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM calls_active WHERE tenant_id = $1"
                                   " AND answered_at IS NOT NULL AND node_id = 'node-a'", tenant))


def node_a_log(t: Topology) -> str:
    """What node A's daemon (a separate process) logged last, for a failure message."""
    node_a = t.nodes["a"]
    return node_a.log_tail() if isinstance(node_a, DaemonProcess) else ""


async def heartbeat_after_answers(pool: asyncpg.Pool, tenant: str) -> bool:
    return bool(await pool.fetchval(
        "SELECT l.renewed_at > max(a.answered_at) FROM leases l, calls_active a WHERE l.name = 'node:node-a'"
        " AND a.tenant_id = $1 AND a.node_id = 'node-a' GROUP BY l.renewed_at", tenant))


async def flagged(pool: asyncpg.Pool, tenant: str) -> list[asyncpg.Record]:
    return list(await pool.fetch(
        "SELECT r.linkedid, r.node_id, r.direction, r.disposition, r.ended_at, r.wholesale_micros,"
        " f.died_at, f.recorded_by FROM call_records r JOIN failover_records f USING (linkedid)"
        " WHERE r.tenant_id = $1", tenant))


@pytest.fixture(scope="module")
async def topology(tmp_path_factory: pytest.TempPathFactory, database_dsn: str,
                   pool: asyncpg.Pool) -> AsyncIterator[Topology]:
    """test_edge's world, node A's daemon a separate OS process (what kill -9 must hit)."""
    async with edge_world(tmp_path_factory, database_dsn, pool, processes=frozenset({"a"})) as topo:
        yield topo


async def test_node_a_killed_during_twenty_calls_records_them_once_and_alpha_moves_to_b(
        topology: Topology) -> None:
    t = topology
    alpha = t.tenants["alpha"]
    partner = await t.pool.fetchval("SELECT partner_id FROM tenants WHERE id = $1", alpha)
    code, _ = await asyncio.to_thread(t.register, "alpha_102")
    assert code == 0, "alpha_102 did not register on node A through the edge"

    carrier = sipp_uas(t.carrier_port, uas_scenario(invite_timeout_ms=60_000, bye_timeout_ms=300_000),
                       calls=CALLS, timeout="300s")
    t.procs.append(carrier)
    await asyncio.sleep(0.3)
    # Each call holds far longer than the test: node A's death is what ends them. The calls come
    # 50 ms apart, as a busy office's do, not as one burst of 20 processes starting at once.
    phones = []
    for _ in range(CALLS):
        phones.append(t.call("alpha_101", NUMBER, dialog_call_scenario(auth=True, hold_ms=240_000)))
        await asyncio.sleep(PHONE_GAP_S)
    deadline = time.monotonic() + ANSWERED_DEADLINE_S
    while await answered_on_node_a(t.pool, alpha) < CALLS:
        failed = [p for p in phones if p.poll() is not None]
        if failed or time.monotonic() > deadline:
            pytest.fail(f"{await answered_on_node_a(t.pool, alpha)} of {CALLS} calls up on node A; phones failed:\n"
                        + "\n".join(f"exit {p.returncode}: {sipp_failure(p)}" for p in failed)
                        + f"\nthe edge:\n{t.kamailio.console(40)}\nnode A's daemon:\n{node_a_log(t)}")
        await asyncio.sleep(0.2)

    node_a = t.nodes["a"]
    assert isinstance(node_a, DaemonProcess)
    # The kill comes after a heartbeat of node A that saw all 20 answered (its last one is the
    # time of death the calls end at): at most node.lease_seconds / 3 from now.
    deadline = time.monotonic() + LEASE_SECONDS
    while not await heartbeat_after_answers(t.pool, alpha):
        assert time.monotonic() < deadline, "node A's daemon renewed no heartbeat after its calls were answered"
        await asyncio.sleep(0.1)
    node_a.runner.kill()  # kill -9 of node A's Asterisk: no CDR will ever come
    node_a.kill()  # kill -9 of its daemon's process: nothing released, its heartbeat left to expire
    killed = time.monotonic()

    registered_at = await moved_and_called(t, killed)
    called_at = time.monotonic()

    deadline = time.monotonic() + RECORDED_DEADLINE_S
    while len(await flagged(t.pool, alpha)) < CALLS:
        assert time.monotonic() < deadline, f"node B recorded {len(await flagged(t.pool, alpha))} of node A's calls"
        await asyncio.sleep(0.2)
    recorded_at = time.monotonic()
    print(f"kill -9 of node A (Asterisk + daemon) with {CALLS} calls up: alpha registered on node B after"
          f" {registered_at - killed:.2f} s, new call done {called_at - killed:.2f} s,"
          f" {CALLS} calls recorded by node B {recorded_at - killed:.2f} s after the kill")
    await asyncio.sleep(3)  # another round of the survivor's jobs: nothing more is recorded

    rows = await flagged(t.pool, alpha)
    assert len(rows) == CALLS and len({r["linkedid"] for r in rows}) == CALLS
    assert {(r["node_id"], r["direction"], r["disposition"]) for r in rows} == {("node-a", "outbound", "ANSWERED")}
    assert len({r["died_at"] for r in rows}) == 1 and all(r["ended_at"] == r["died_at"] for r in rows)
    assert all(r["recorded_by"].startswith("node-b:") for r in rows), [r["recorded_by"] for r in rows]
    assert all((r["wholesale_micros"] or 0) > 0 for r in rows), [r["wholesale_micros"] for r in rows]
    everything = await records(t.pool, CALLS + 1)
    assert sorted((r["direction"], r["node_id"]) for r in everything if r["tenant_id"] == alpha) == (
        [("internal", "node-b")] + [("outbound", "node-a")] * CALLS)
    assert await t.pool.fetchval("SELECT count(*) FROM calls_active WHERE tenant_id = $1", alpha) == 0

    # Each call debited once, by its own reference; the balance is the sum of the entries.
    debits = await t.pool.fetch("SELECT reference, amount FROM wallet_entries WHERE partner_id = $1"
                                " AND kind LIKE 'usage_%'", partner)
    assert len(debits) == len({d["reference"] for d in debits}) == CALLS, [dict(d) for d in debits]
    assert -sum(d["amount"] for d in debits) == sum(r["wholesale_micros"] for r in rows)
    assert await ledger_mismatches(t.pool) == []
    # The tenant's usage is the sum of its records, per call class (over its periods: a run may
    # cross one's end).
    usage = await t.pool.fetch(
        "SELECT call_class, sum(calls)::int AS calls, sum(answered_s)::bigint AS answered_s,"
        " sum(billable_s)::bigint AS billable_s, sum(retail_micros)::bigint AS retail_micros,"
        " sum(wholesale_micros)::bigint AS wholesale_micros FROM tenant_usage WHERE tenant_id = $1"
        " GROUP BY call_class ORDER BY call_class", alpha)
    sums = await t.pool.fetch(
        "SELECT call_class, count(*)::int AS calls, sum(answered_s)::bigint AS answered_s,"
        " sum(billable_s)::bigint AS billable_s, COALESCE(sum(retail_micros), 0)::bigint AS retail_micros,"
        " COALESCE(sum(wholesale_micros), 0)::bigint AS wholesale_micros FROM call_records"
        " WHERE tenant_id = $1 GROUP BY call_class ORDER BY call_class", alpha)
    assert [dict(r) for r in usage] == [dict(r) for r in sums]
    for phone in phones:
        phone.kill()
        phone.wait()
