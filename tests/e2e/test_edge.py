"""Two Asterisk nodes behind Kamailio (docs/scale.md, "Topology"), all started by the project's
runners: Kamailio on 127.0.0.3, node A and node B each with its daemon, one PostgreSQL.

Tenant alpha lives on node A, bravo on node B. Phones register through the edge (Path), and
internal, outbound (SIPp carrier) and inbound DID calls of both tenants are each recorded once,
with the node that carried them. Then node A's Asterisk is killed (-9): alpha's phone registers
again and a new call (and 911) succeed through node B within the bound docs/scale.md states.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest
from edge_support import EDGE_IP, dialog_call_scenario, edge_files, edge_settings, kamailio, sipp_edge, sipp_uas
from harness import Beside, daemon_beside, free_port, make_config
from inventory_support import buy_did
from process_support import DaemonProcess, daemon_process, node_applier
from tenants_e2e import answer_scenario, register_scenario, sipp_failure, uas_scenario
from wallet_support import active_funded

from controlplane.asterisk.runner.kamailio import KamailioRunner
from controlplane.config import (CallsConfig, CarrierConfig, DatabaseConfig, EmergencyConfig, HttpConfig,
                                 LimitsConfig, NodeConfig, WebhooksConfig)
from controlplane.nodes import store as nodes_store
from controlplane.nodes.edge import EdgeSettings, Node
from controlplane.profiles.models import AssignmentBody
from controlplane.profiles.services import ProfileServices
from controlplane.tenants.applier import AmiControl, Applier
from controlplane.tenants.http import tenant_services
from controlplane.tenants.models import ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate
from controlplane.tenants.numbering import NumberingServices
from controlplane.tenants.services import TenantServices

pytestmark = [pytest.mark.e2e]
TOLL_FREE = "18005550199"
PLATFORM = "platform-token-edge"
# A deadline, not a speed target (bench/bench_edge.py measures the failover time against the
# bound docs/scale.md states).
REREGISTER_DEADLINE_S = 30.0


@dataclass
class Topology:
    pool: asyncpg.Pool
    edge: EdgeSettings
    kamailio: KamailioRunner
    nodes: dict[str, Beside | DaemonProcess]
    tenants: dict[str, str]  # prefix -> tenant id
    passwords: dict[str, str]
    dids: dict[str, str]  # prefix -> DID
    carrier_port: int
    emergency: EmergencyConfig
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def uas(self, port: int, scenario: str) -> subprocess.Popen[bytes]:
        proc = sipp_uas(port, scenario)
        self.procs.append(proc)
        return proc

    def call(self, user: str | None, service: str, scenario: str) -> subprocess.Popen[bytes]:
        proc = sipp_edge(self.edge, scenario, service, user=user, password=self.passwords.get(user or ""),
                         background=True, timeout="60s")
        assert isinstance(proc, subprocess.Popen)
        self.procs.append(proc)
        return proc

    def register(self, user: str, timeout: str = "10s") -> tuple[int, int]:
        port = free_port(socket.SOCK_DGRAM)
        done = sipp_edge(self.edge, register_scenario(), user, user=user, password=self.passwords[user],
                         port=port, timeout=timeout)
        assert isinstance(done, subprocess.CompletedProcess)
        return done.returncode, port


def node_config(tmp: Any, name: str, dsn: str, edge: EdgeSettings, carrier_port: int,
                emergency: EmergencyConfig) -> Any:
    return make_config(tmp, instance=f"edge{name}{os.getpid()}", http=HttpConfig(
        port=free_port(), service_token="t", platform_token=PLATFORM), database=DatabaseConfig(dsn=dsn),
        # Calls from the carrier reach every node through the edge: identified by its address.
        carrier=CarrierConfig(host="127.0.0.1", port=carrier_port, match=EDGE_IP),
        calls=CallsConfig(reconcile_seconds=1.0, settle_seconds=1.0), limits=LimitsConfig(agi_port=free_port()),
        emergency=emergency, webhooks=WebhooksConfig(secret_key="edge-shared-webhook-key-0123456789"),
        node=NodeConfig(id=f"node-{name}", peers=(f"node-{'b' if name == 'a' else 'a'}",),
                                             edge_rpc=edge.rpc_url))


@pytest.fixture(scope="module")
async def topology(tmp_path_factory: pytest.TempPathFactory, database_dsn: str,
                   pool: asyncpg.Pool) -> AsyncIterator[Topology]:
    async with edge_world(tmp_path_factory, database_dsn, pool) as topo:
        yield topo


@contextlib.asynccontextmanager
async def edge_world(tmp_path_factory: pytest.TempPathFactory, database_dsn: str, pool: asyncpg.Pool,
                     processes: frozenset[str] = frozenset()) -> AsyncIterator[Topology]:
    """The world; the nodes named in ``processes`` get their daemon as a separate OS process
    (process_support), the others in-process beside their Asterisk."""
    tmp = tmp_path_factory.mktemp("edge")
    edge = edge_settings(f"k{os.getpid()}", database_dsn)
    carrier_port = free_port(socket.SOCK_DGRAM)
    emergency = EmergencyConfig(trunk_host="127.0.0.1", trunk_port=free_port(socket.SOCK_DGRAM),
                                relay_host="127.0.0.1", relay_port=free_port(socket.SOCK_DGRAM))
    configs = {n: node_config(tmp / n, n, database_dsn, edge, carrier_port, emergency) for n in ("a", "b")}
    for set_id, name in enumerate(("a", "b"), start=1):
        await nodes_store.upsert_node(pool, Node(f"node-{name}", set_id, "127.0.0.1",
                                                 configs[name].asterisk.sip_port))
    async with contextlib.AsyncExitStack() as stack:
        nodes: dict[str, Beside | DaemonProcess] = {
            n: await stack.enter_async_context(daemon_process(configs[n], database_dsn, pool) if n in processes
                                               else daemon_beside(configs[n], database_dsn)) for n in configs}
        applier = Applier(pool, dialplan_path=nodes["a"].etc_dir / "extensions_tenants.conf",
                          control=AmiControl(nodes["a"].ami))
        tenants, numbering = TenantServices(pool, applier), NumberingServices(pool, applier)
        partner = (await tenants.create_partner(PartnerCreate(name="Edge", tier=PartnerTier.BUSINESS))).id
        await active_funded(pool, partner, 100_000_000)
        ids, passwords, dids = {}, {}, {}
        for i, prefix in enumerate(("alpha", "bravo")):
            ids[prefix] = (await tenants.create_tenant(partner, TenantCreate(
                name=prefix, billing_email="a@b.co", sip_prefix=prefix))).id
            ext = {}
            for number in ("101", "102"):
                made = await numbering.create_extension(partner, ids[prefix], ExtensionCreate(number=number,
                                                                                             display_name="U"))
                passwords[made.sip_username], ext[number] = made.secrets.sip_password, made.id
            dids[prefix] = f"+1501555{i}101"
            await buy_did(pool, partner, dids[prefix], tenant_id=ids[prefix], extension_id=ext["101"],
                          numbering=numbering)
            await ProfileServices(pool).assign(partner, ids[prefix], AssignmentBody(
                per_minute_micros=50_000, toll_free_per_minute_micros=30_000, min_seconds=60,
                increment_seconds=6))
        # Every node carries every tenant's dialplan (what a failover needs).
        for member in nodes.values():
            if isinstance(member, Beside):
                await member.app[tenant_services].applier.apply_dialplan(force=True)
            else:  # an external Asterisk without config_dir: its daemon writes no dialplan file
                await node_applier(member, pool).apply_dialplan(force=True)
        # Pin through the platform RPC, on the other daemon than the node's own.
        for prefix, node, daemon in (("alpha", "node-a", "b"), ("bravo", "node-b", "a")):
            status, body = await rpc(configs[daemon].http.port, "PUT", f"/v1/platform/tenants/{ids[prefix]}/node",
                                     {"node_id": node})
            assert status == 200 and body["node_id"] == node, body
        runner = stack.enter_context(kamailio(f"k{os.getpid()}", edge, await edge_files(pool, edge)))
        topo = Topology(pool, edge, runner, nodes, ids, passwords, dids, carrier_port, emergency)
        try:
            yield topo
        finally:
            for proc in topo.procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


async def rpc(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
            method, f"http://127.0.0.1:{port}{path}", json=body,
            headers={"Authorization": f"Bearer {PLATFORM}"}) as response:
        return response.status, await response.json(content_type=None)


async def finished(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    code = await asyncio.to_thread(proc.wait, timeout)
    assert code == 0, sipp_failure(proc)


async def moved_and_called(t: Topology, killed: float) -> float:
    """After node A died (at ``killed``): alpha_102 registers again through the edge (on node B),
    and alpha_101 calls it there. Returns when it registered."""
    registered_at, port = None, 0
    while time.monotonic() - killed < REREGISTER_DEADLINE_S:
        code, port = await asyncio.to_thread(t.register, "alpha_102", "5s")
        if code == 0:
            registered_at = time.monotonic()
            break
    assert registered_at is not None, "alpha_102 never registered again after node A died\n" + t.kamailio.console(40)
    answer = t.uas(port, answer_scenario(30000))
    await asyncio.sleep(0.3)
    await finished(t.call("alpha_101", "102", dialog_call_scenario(auth=True)))
    await finished(answer)
    return registered_at


async def records(pool: asyncpg.Pool, n: int, timeout: float = 30) -> list[asyncpg.Record]:
    deadline = time.monotonic() + timeout
    rows: list[asyncpg.Record] = []
    while time.monotonic() < deadline:
        rows = await pool.fetch("SELECT * FROM call_records ORDER BY recorded_at")
        if len(rows) >= n:
            return rows
        await asyncio.sleep(0.2)
    raise AssertionError(f"{n} records expected, got {len(rows)}: {[dict(r) for r in rows]}")


async def test_phones_register_and_call_through_the_edge_on_their_tenants_node(topology: Topology) -> None:
    t = topology
    ports: dict[str, int] = {}
    for user in ("alpha_101", "alpha_102", "bravo_101", "bravo_102"):
        code, ports[user] = await asyncio.to_thread(t.register, user)
        assert code == 0, f"{user} did not register through the edge"
    paths = await t.pool.fetch("SELECT endpoint, path FROM ps_contacts ORDER BY endpoint")
    assert [r["endpoint"] for r in paths] == ["alpha_101", "alpha_102", "bravo_101", "bravo_102"]
    assert all(EDGE_IP in (r["path"] or "") for r in paths), [dict(r) for r in paths]

    for prefix in ("alpha", "bravo"):
        # Internal: 101 calls 102, who answers on the port it registered from (through the edge).
        answer = t.uas(ports[f"{prefix}_102"], answer_scenario(30000))
        await asyncio.sleep(0.3)
        await finished(t.call(f"{prefix}_101", "102", dialog_call_scenario(auth=True)))
        await finished(answer)
        # Outbound: the carrier (SIPp UAS) answers the node's call.
        carrier = t.uas(t.carrier_port, uas_scenario(invite_timeout_ms=30000, bye_timeout_ms=30000))
        await asyncio.sleep(0.3)
        await finished(t.call(f"{prefix}_101", TOLL_FREE, dialog_call_scenario(auth=True)))
        await finished(carrier)
        # Inbound: the carrier calls the tenant's DID at the edge; 101 answers.
        answer = t.uas(ports[f"{prefix}_101"], answer_scenario(30000))
        await asyncio.sleep(0.3)
        await finished(t.call(None, t.dids[prefix], dialog_call_scenario(auth=False)))
        await finished(answer)

    rows = await records(t.pool, 6)
    assert len(rows) == 6 and len({r["linkedid"] for r in rows}) == 6
    home = {t.tenants["alpha"]: "node-a", t.tenants["bravo"]: "node-b"}
    seen = sorted((r["tenant_id"] == t.tenants["alpha"], r["direction"], r["node_id"]) for r in rows)
    assert seen == sorted((tid == t.tenants["alpha"], d, home[tid])
                          for tid in home for d in ("internal", "outbound", "inbound")), seen


async def test_moving_a_tenant_drains_it_calls_in_progress_finish_on_the_old_node(topology: Topology) -> None:
    t = topology
    before = len(await t.pool.fetch("SELECT 1 FROM call_records"))
    carrier = t.uas(t.carrier_port, uas_scenario(invite_timeout_ms=30000, bye_timeout_ms=30000))
    await asyncio.sleep(0.3)
    long_call = t.call("bravo_101", TOLL_FREE, dialog_call_scenario(auth=True, hold_ms=5000))
    await asyncio.sleep(1.5)  # answered on node B, and up while bravo moves
    status, body = await rpc(t.nodes["a"].config.http.port, "PUT", f"/v1/platform/tenants/{t.tenants['bravo']}/node",
                             {"node_id": "node-a"})
    assert status == 200 and body["moved_from"] == "node-b", body
    # New registrations and calls of bravo go to node A at once; the long call stays on node B.
    code, port = await asyncio.to_thread(t.register, "bravo_102")
    assert code == 0
    answer = t.uas(port, answer_scenario(30000))
    await asyncio.sleep(0.3)
    await finished(t.call("bravo_101", "102", dialog_call_scenario(auth=True)))
    await finished(answer)
    assert long_call.poll() is None, "the call in progress did not outlive the move"
    await finished(long_call)
    await finished(carrier)
    rows = (await records(t.pool, before + 2))[before:]
    assert sorted((r["tenant_id"], r["direction"], r["node_id"]) for r in rows) == [
        (t.tenants["bravo"], "internal", "node-a"), (t.tenants["bravo"], "outbound", "node-b")]
    status, body = await rpc(t.nodes["b"].config.http.port, "GET", "/v1/platform/nodes")
    assert status == 200 and {n["id"]: n["tenants"] for n in body["items"]} == {"node-a": 2, "node-b": 0}


async def test_node_a_killed_alpha_registers_and_calls_on_node_b_within_the_bound(topology: Topology) -> None:
    t = topology
    before = len(await t.pool.fetch("SELECT 1 FROM call_records"))
    killed = time.monotonic()
    t.nodes["a"].runner.kill()
    registered_at = await moved_and_called(t, killed)
    print(f"failover: registered {registered_at - killed:.2f} s, call done {time.monotonic() - killed:.2f} s"
          " after kill -9 of node A")
    rows = await records(t.pool, before + 1)
    assert rows[-1]["tenant_id"] == t.tenants["alpha"] and rows[-1]["node_id"] == "node-b"
    # 911 keeps working through the edge while node A is down (relay or E911 trunk answers).
    trunks = [t.uas(p, uas_scenario(invite_timeout_ms=30000, bye_timeout_ms=30000))
              for p in (t.emergency.trunk_port, t.emergency.relay_port)]
    await asyncio.sleep(0.3)
    await finished(t.call("alpha_101", "911", dialog_call_scenario(auth=True)))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(p.poll() == 0 for p in trunks):
        await asyncio.sleep(0.2)
    assert any(p.poll() == 0 for p in trunks), [sipp_failure(p) for p in trunks]
