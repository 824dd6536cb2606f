"""Calls rated in real time: SIPp phones and a SIPp carrier on a real Asterisk (the
project's runner, base config, tenants realtime), the daemon in-process."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace

import asyncpg
import msgspec
import pytest
from wallet_support import active_funded
from harness import calls_config, daemon_beside, external, free_port
from inventory_support import buy_did
from tenants_e2e import answer_scenario, call_scenario, register_scenario, sipp, sipp_failure, uas_scenario

from controlplane.profiles.models import AssignmentBody
from controlplane.calls.services import CallServices
from controlplane.profiles.services import ProfileServices
from controlplane.config import HttpConfig
from controlplane.tenants.applier import AmiControl, Applier
from controlplane.tenants.models import ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate
from controlplane.tenants.numbering import NumberingServices
from controlplane.tenants.services import TenantServices

pytestmark = [pytest.mark.e2e]
TOLL_FREE = "18005550199"


FUNDED = 100_000_000  # an ACTIVE partner's wallet, funded through the ledger


@dataclass
class World:
    config: object
    pool: asyncpg.Pool
    sip: SimpleNamespace
    partner: str
    tenant: str
    passwords: dict[str, str]
    services: CallServices
    procs: list[subprocess.Popen[bytes]]

    def phone(self, scenario: str, service: str, user: str | None = None, background: bool = True,
              port: int | None = None) -> subprocess.Popen[bytes] | subprocess.CompletedProcess[bytes]:
        proc = sipp(self.sip, scenario, service, user=user,  # type: ignore[arg-type]
                    password=self.passwords.get(user or ""), background=background, port=port, timeout="120s")
        if isinstance(proc, subprocess.Popen):
            self.procs.append(proc)
        return proc

    def carrier(self, answer: bool) -> subprocess.Popen[bytes]:
        scenario = uas_scenario(answer=answer, invite_timeout_ms=60000, bye_timeout_ms=90000)
        return self.phone(scenario, "carrier", port=self.config.carrier.port)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, database_dsn: str,
                pool: asyncpg.Pool) -> AsyncIterator[World]:
    config = calls_config(tmp_path_factory.mktemp("calls"), instance=f"calls{os.getpid()}",
                          dsn=database_dsn, http=HttpConfig(port=free_port(), service_token="t"))
    async with daemon_beside(config, database_dsn, dialplan=False) as beside:
        applier = Applier(pool, dialplan_path=beside.etc_dir / "extensions_tenants.conf",
                          control=AmiControl(beside.ami))
        tenants, numbering = TenantServices(pool, applier), NumberingServices(pool, applier)
        partner = (await tenants.create_partner(PartnerCreate(name="Calls", tier=PartnerTier.BUSINESS))).id
        await active_funded(pool, partner, FUNDED)
        tenant = (await tenants.create_tenant(partner, TenantCreate(name="Acme", billing_email="a@b.co",
                                                                    sip_prefix="acme"))).id
        passwords, ext_ids = {}, {}
        for number in ("101", "102", "103"):
            creds_ = await numbering.create_extension(partner, tenant, ExtensionCreate(number=number,
                                                                                     display_name="U"))
            passwords[creds_.sip_username] = creds_.secrets.sip_password
            ext_ids[number] = creds_.id
        await buy_did(pool, partner, "+15015550101", tenant_id=tenant, extension_id=ext_ids["103"],
                      numbering=numbering)
        await applier.apply_dialplan(force=True)
        services = CallServices(pool)
        # 60/6 retail, toll-free at $0.03/min; everything else at $0.05/min.
        await ProfileServices(pool).assign(partner, tenant, AssignmentBody(
            per_minute_micros=50_000, toll_free_per_minute_micros=30_000, min_seconds=60,
            increment_seconds=6))
        sip = SimpleNamespace(sip_port=config.asterisk.sip_port)
        yield World(external(config), pool, sip, partner, tenant, passwords, services, beside.procs)


async def register(world: World, user: str) -> int:
    port = free_port(socket.SOCK_DGRAM)
    done = await asyncio.to_thread(world.phone, register_scenario(), user, user, False, port)
    assert done.returncode == 0, f"{user} did not register"
    return port


async def wait_records(pool: asyncpg.Pool, n: int, timeout: float) -> list[asyncpg.Record]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = await pool.fetch("SELECT * FROM call_records ORDER BY started_at")
        if len(rows) >= n:
            return rows
        await asyncio.sleep(0.2)
    raise AssertionError(f"{n} records expected, got {len(rows)}")


async def wait_proc(proc: subprocess.Popen[bytes], timeout: float) -> int:
    return await asyncio.to_thread(proc.wait, timeout)


async def test_calls_are_rated_in_real_time(world: World) -> None:
    # 1. Unanswered outbound: the carrier says busy.
    busy = world.carrier(answer=False)
    await asyncio.sleep(0.3)
    failed = world.phone(call_scenario(auth=True), TOLL_FREE, "acme_102")
    assert await wait_proc(busy, 30) == 0, sipp_failure(busy)
    await wait_proc(failed, 30)  # fails on 486: expected
    # 2. The 61 s toll-free call, and meanwhile an internal and an inbound call.
    carrier = world.carrier(answer=True)
    await asyncio.sleep(0.3)
    long_call = world.phone(call_scenario(auth=True, hold_ms=61_000), TOLL_FREE, "acme_102")
    port101 = await register(world, "acme_101")
    port103 = await register(world, "acme_103")
    answer101 = world.phone(answer_scenario(30000), "acme_101", port=port101)
    answer103 = world.phone(answer_scenario(30000), "acme_103", port=port103)
    internal = world.phone(call_scenario(auth=True, hold_ms=1000), "101", "acme_102")
    inbound = world.phone(call_scenario(auth=False, hold_ms=1000), "+15015550101")
    for proc in (internal, inbound, answer101, answer103):
        assert await wait_proc(proc, 40) == 0, sipp_failure(proc)
    assert await wait_proc(long_call, 90) == 0, sipp_failure(long_call)
    assert await wait_proc(carrier, 30) == 0, sipp_failure(carrier)
    rows = await wait_records(world.pool, 4, timeout=10)
    by = {(r["direction"], r["disposition"]): r for r in rows}

    tf = by[("outbound", "ANSWERED")]
    assert tf["call_class"] == "toll_free" and tf["callee"] == "+18005550199" and tf["extension"] == "102"
    assert tf["answered_s"] in (61, 62)
    assert tf["billable_s"] == 66  # 60/6
    assert tf["retail_micros"] == 33_000  # 66 s at $0.03/min
    assert tf["wholesale_micros"] == 18_700  # Business toll-free $0.017/min, 6/6: 66 s
    assert tf["started_at"].tzinfo is not None and tf["answered_at"] > tf["started_at"]

    busy_row = by[("outbound", "BUSY")]
    assert busy_row["retail_micros"] == 0 and busy_row["wholesale_micros"] == 0 and busy_row["billable_s"] == 0

    internal_row = by[("internal", "ANSWERED")]
    assert internal_row["call_class"] == "internal" and internal_row["retail_micros"] == 0
    assert internal_row["callee"] == "101" and internal_row["extension"] == "102"

    inbound_row = by[("inbound", "ANSWERED")]
    assert inbound_row["did"] == "+15015550101" and inbound_row["extension"] == "103"
    assert inbound_row["call_class"] == "local" and inbound_row["billable_s"] == 60
    assert inbound_row["retail_micros"] == 50_000 and inbound_row["wholesale_micros"] == 1_400
    assert inbound_row["retail_rate_id"].endswith(":local:inbound")

    events = {(r["type"], r["tenant_id"]) for r in await world.pool.fetch("SELECT type, tenant_id FROM events")}
    for kind in ("call.initiated", "call.answered", "call.completed", "call.failed", "inbound_call.ringing",
                 "inbound_call.answered", "inbound_call.completed"):
        assert (kind, world.tenant) in events, kind
    body = await world.pool.fetchval(
        "SELECT body FROM events WHERE type = 'call.completed' AND convert_from(body, 'UTF8') LIKE '%' || $1 || '%'", tf["id"])
    completed = msgspec.json.decode(body)
    assert completed["data"]["call"]["retail_micros"] == 33_000 and completed["data"]["late"] is False
    # Wallet and usage moved in the same transactions as the records.
    total = sum(r["wholesale_micros"] or 0 for r in rows)
    # (The account capability's unit fees may draw from the same wallet meanwhile: count the calls'.)
    assert await world.pool.fetchval("SELECT sum(amount) FROM wallet_entries WHERE partner_id = $1"
                                     " AND call_id IS NOT NULL", world.partner) == -total
    assert await world.pool.fetchval("SELECT sum(amount) FROM wallet_entries WHERE partner_id = $1",
                                     world.partner) == await world.pool.fetchval(
        "SELECT balance FROM partner_wallets WHERE partner_id = $1", world.partner)
    kinds = {r["kind"] for r in await world.pool.fetch(
        "SELECT kind FROM wallet_entries WHERE partner_id = $1 AND call_id IS NOT NULL", world.partner)}
    assert kinds <= {"usage_local", "usage_toll_free"} and "usage_toll_free" in kinds
    usage = await world.services.usage(world.partner, world.tenant, tf["started_at"])
    assert usage.calls == 4 and usage.retail_micros == 83_000
    assert {line.call_class: line.billable_s for line in usage.lines}["toll_free"] == 66


async def test_asterisk_cdrs_land_in_our_database_and_rebuild_the_same_calls(world: World) -> None:
    """The reconciler's source: cdr_pgsql rows, rebuilt by the pure core, agree with the live path."""
    from cdr_ingest.cdr_rebuild import rebuild
    from cdr_ingest.records import build_record
    from provisioning.names import channel_extension
    from controlplane.calls import store
    from controlplane.calls.recorder import CallRecorder

    live = {r["linkedid"]: r for r in await world.pool.fetch("SELECT * FROM call_records")}
    async with world.pool.acquire() as conn:
        rows = await store.unrecorded_cdrs(conn, 0, 100)  # none: every call was recorded live
        assert rows == []
        cdr = await conn.fetch("SELECT * FROM asterisk_cdr")
        assert {r["linkedid"] for r in cdr} >= set(live)
        billing = await CallRecorder(world.pool).billing(conn, world.tenant)
    from cdr_ingest.cdr_rebuild import CdrRow
    rebuilt = rebuild([CdrRow(r["linkedid"], r["uniqueid"], r["start"] or 0.0, r["answer"] or 0.0, r["end"] or 0.0,
                              r["src"], r["dst"],
                              r["channel"], r["dstchannel"], r["disposition"], r["accountcode"], r["userfield"])
                       for r in cdr])
    assert billing is not None and {s.call_id for s in rebuilt} == set(live)
    for summary in rebuilt:
        record, row = build_record(summary, billing, channel_extension), live[summary.call_id]
        assert (record.direction, record.call_class, record.disposition, record.did, record.retail_micros) == \
            (row["direction"], row["call_class"], row["disposition"], row["did"], row["retail_micros"]), row["id"]
