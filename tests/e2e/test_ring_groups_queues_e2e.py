"""Ring groups and queues on a real Asterisk with SIPp, the daemon in-process (issue 17, "Must show"):

- a carrier call to a DID -> IVR -> the caller keys 2 (RFC 2833) -> a ring group of two registered
  phones rings both; the first to answer gets the call and the other gets CANCEL within 1 s of
  that answer (its scenario fails when the CANCEL is later);
- a queue with three members distributes three waiting callers (each phone answers exactly one
  call); a fourth caller hangs up while waiting: the queue.caller_abandoned event is emitted
  and the statistics match (3 answered, 1 abandoned, none waiting); the callers wait with the
  tenant's uploaded music on hold (no music-on-hold warning from Asterisk);
- a full queue (max callers 1) sends the next caller to its overflow destination at once;
- a ring group's external member is dialled out through the tenant's own outbound path to the
  carrier and the call is recorded twice, once per billed leg: the inbound call and the
  outbound leg (docs/queues.md);
- another tenant's queue is not a destination of this tenant's DID (422 naming the field).

Every change goes through the services (so through tenant_flows_changed and the flows applier),
never through a reload the test asks for; the queue itself is read by app_queue from realtime.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import struct
import subprocess
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from flows_support import carrier_dtmf_scenario, dtmf_available
from harness import Beside, calls_config, daemon_beside, free_port
from inventory_support import buy_did
from queues_support import cancelled_scenario, carrier_hold_scenario, late_answer_scenario
from phone_world import funded_cast, registered_phone, with_instance_media
from tenants_e2e import sipp_as, sipp_failure

from controlplane.config import HttpConfig
from controlplane.flows.http import services_key as flows_key
from controlplane.flows.models import DestinationBody, IvrBody, RouteBody
from controlplane.flows.plugin import applier_key
from controlplane.moh.http import services_key as moh_key
from controlplane.queues.http import services_key as queues_key
from controlplane.queues.models import QueueCreate, QueueMember, Strategy
from controlplane.ring_groups.http import services_key as ring_groups_key
from controlplane.ring_groups.models import DestinationBody as QueueDestination
from controlplane.ring_groups.models import Member, MemberKind, RingGroupCreate
from controlplane.ring_groups.models import Strategy as RgStrategy
from controlplane.shared.problems import Problem
from controlplane.tenants.http import numbering_services, tenant_services
from provisioning.destinations import DestinationKind

pytestmark = [pytest.mark.e2e]
DID = "+15015550178"
RING_MS, CANCEL_WITHIN_MS = 2000, 1000


@dataclass
class World:
    beside: Beside
    pool: asyncpg.Pool
    partner: str
    tenants: dict[str, str]
    passwords: dict[str, str]
    did: str
    sip: SimpleNamespace

    def run(self, scenario: str, service: str, *, user: str | None = None, port: int | None = None,
            background: bool = True) -> Any:
        return sipp_as(self.sip, self.beside.procs, self.passwords, scenario, service, user=user, port=port,
                       background=background)

    async def phone(self, user: str, scenario: str) -> subprocess.Popen[bytes]:
        return await registered_phone(self.run, user, scenario)

    def asterisk_log(self) -> str:
        """The tail of Asterisk's messages.log (notices, warnings, errors), for a failure message."""
        log_dir = getattr(self.beside.runner, "log_dir", None)
        path = Path(log_dir) / "messages.log" if log_dir else None
        return path.read_text(errors="replace")[-4000:] if path is not None and path.exists() else ""

    async def applied(self, tenant: str) -> None:
        await self.beside.app[applier_key].wait_applied(self.tenants[tenant], timeout=10)


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, database_dsn: str,
                pool: asyncpg.Pool) -> AsyncIterator[World]:
    if not dtmf_available():
        pytest.fail("sip-tester's RFC 2833 pcaps are missing (/usr/share/sip-tester/dtmf_2833_*.pcap)")
    config = calls_config(tmp_path_factory.mktemp("queues"), instance=f"queues{os.getpid()}", dsn=database_dsn,
                          http=HttpConfig(port=free_port(), service_token="t"))
    config = with_instance_media(config)
    async with daemon_beside(config, database_dsn) as beside:
        app = beside.app
        app[applier_key].etc_dir = beside.etc_dir
        cast = await funded_cast(app, pool, "Queues", (("qacme", ("101", "102", "103")), ("qbeta", ("101",))))
        did = await buy_did(pool, cast.partner, DID, tenant_id=cast.tenants["qacme"],
                            numbering=app[numbering_services])
        await app[tenant_services].applier.wait_applied(10)
        yield World(beside, pool, cast.partner, cast.tenants, cast.passwords, did,
                    SimpleNamespace(sip_port=config.asterisk.sip_port, carrier_port=config.carrier.port))


def tone_wav(seconds: float) -> bytes:
    """A 440 Hz tone as 16 kHz mono WAV (the upload is converted to 8 kHz)."""
    frames = int(16000 * seconds)
    samples = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 16000))) for i in range(frames))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples)
    return out.getvalue()


def dest(kind: str, ref: str = "") -> DestinationBody:
    return DestinationBody(kind=kind, ref=ref)


async def test_ivr_2_rings_the_group_first_answer_wins_the_other_is_cancelled(world: World) -> None:
    acme = world.tenants["qacme"]
    group = await world.beside.app[ring_groups_key].create(world.partner, acme, RingGroupCreate(
        name="Sales", members=[Member(kind=MemberKind.EXTENSION, number="101"),
                               Member(kind=MemberKind.EXTENSION, number="102")], ring_seconds=20))
    flows = world.beside.app[flows_key]
    ivr = await flows.save_ivr(world.partner, acme, IvrBody(
        name="Main", options={"1": dest("extension", "103"), "2": dest("ring_group", group.id)}))
    for route, keys in ((dest("ring_group", group.id), ""), (dest("ivr", ivr.id), "2")):
        await flows.route_did(world.partner, acme, world.did, RouteBody(destination=route))
        await world.applied("qacme")
        answers = await world.phone("qacme_101", late_answer_scenario(ring_ms=RING_MS))
        # Rung at the same moment as 101: its CANCEL is due within 1 s of 101's answer.
        cancelled = await world.phone("qacme_102", cancelled_scenario(cancel_within_ms=RING_MS + CANCEL_WITHIN_MS))
        scenario = carrier_dtmf_scenario(keys, wait_ms=1500, hold_ms=3000) if keys else carrier_hold_scenario(3000)
        caller = world.run(scenario, DID)
        codes = [await asyncio.to_thread(p.wait, 40) for p in (answers, cancelled, caller)]
        assert codes == [0, 0, 0], f"{route}: " + "\n".join(sipp_failure(p) for p in (answers, cancelled, caller))


async def stats_when(world: World, queue_id: str, answered: int, abandoned: int) -> Any:
    stats = None
    for _ in range(100):
        stats = await world.beside.app[queues_key].stats(world.partner, world.tenants["qacme"], queue_id, None)
        if (stats.answered, stats.abandoned, stats.waiting) == (answered, abandoned, 0):
            return stats
        await asyncio.sleep(0.1)
    raise AssertionError(f"statistics never matched: {stats}")


async def test_a_queue_distributes_three_callers_and_reports_an_abandoned_one(world: World) -> None:
    acme = world.tenants["qacme"]
    queues = world.beside.app[queues_key]
    queue = await queues.create(world.partner, acme, QueueCreate(
        name="Support", strategy=Strategy.ROUND_ROBIN, ring_seconds=8, max_wait_seconds=60,
        members=[QueueMember(number=n) for n in ("101", "102", "103")]))
    flows = world.beside.app[flows_key]
    await flows.route_did(world.partner, acme, world.did, RouteBody(destination=dest("queue", queue.id)))
    # the tenant's own music on hold: the waiting callers hear the uploaded file (its class found)
    await world.beside.app[moh_key].put(world.partner, acme, "jazz", tone_wav(3.0))
    await world.applied("qacme")
    phones = [await world.phone(f"qacme_{n}", late_answer_scenario(ring_ms=300)) for n in ("101", "102", "103")]
    callers = [world.run(carrier_hold_scenario(5000), DID) for _ in range(3)]
    await asyncio.sleep(2)  # the callers wait; the queue as app_queue sees it, for a failure message
    shown = await world.beside.ami.action({"Action": "Command", "Command": f"queue show q-{queue.id}"})
    codes = [await asyncio.to_thread(p.wait, 70) for p in callers + phones]
    # every caller answered, every phone answered exactly one call
    assert codes == [0] * 6, "\n".join([str(codes), *(sipp_failure(p) for p in callers + phones),
                                         world.asterisk_log(), str(shown)])
    log = world.asterisk_log()  # no warning: class found, its file played
    assert "res_musiconhold" not in log and "moh" not in log, log
    stats = await stats_when(world, queue.id, answered=3, abandoned=0)
    assert stats.average_wait_s is not None and 0 <= stats.average_wait_s < 15

    # nobody answers now (the phones are gone): the caller waits 3 s, then hangs up
    quitter = world.run(carrier_hold_scenario(3000), DID)
    assert await asyncio.to_thread(quitter.wait, 40) == 0, sipp_failure(quitter)
    stats = await stats_when(world, queue.id, answered=3, abandoned=1)
    events = await world.pool.fetch("SELECT type, body FROM events WHERE tenant_id = $1 AND type LIKE 'queue.%'"
                                    " ORDER BY seq", acme)
    kinds = [e["type"] for e in events]
    assert (kinds.count("queue.caller_joined"), kinds.count("queue.caller_answered"),
            kinds.count("queue.caller_abandoned")) == (4, 3, 1), kinds
    answered_by = {json.loads(e["body"])["data"]["answered_by"] for e in events
                   if e["type"] == "queue.caller_answered"}
    assert answered_by == {"101", "102", "103"}  # distributed: one caller each


async def test_a_full_queue_sends_the_next_caller_to_its_overflow(world: World) -> None:
    acme = world.tenants["qacme"]
    queue = await world.beside.app[queues_key].create(world.partner, acme, QueueCreate(
        name="Small", max_callers=1, max_wait_seconds=30, members=[QueueMember(number="102")],
        overflow=QueueDestination(kind=DestinationKind.EXTENSION, ref="103")))
    await world.beside.app[flows_key].route_did(world.partner, acme, world.did,
                                                RouteBody(destination=dest("queue", queue.id)))
    await world.applied("qacme")
    overflow = await world.phone("qacme_103", late_answer_scenario(ring_ms=300))
    waiting = world.run(carrier_hold_scenario(6000), DID)  # the one caller the queue holds
    await asyncio.sleep(1.5)
    turned = world.run(carrier_hold_scenario(2000), DID)  # the queue is full: to extension 103
    codes = [await asyncio.to_thread(p.wait, 40) for p in (turned, overflow, waiting)]
    assert codes == [0, 0, 0], "\n".join([*(sipp_failure(p) for p in (turned, overflow, waiting)),
                                           world.asterisk_log()])


async def test_an_external_member_is_dialled_out_and_recorded_as_a_billed_leg(world: World) -> None:
    acme = world.tenants["qacme"]
    group = await world.beside.app[ring_groups_key].create(world.partner, acme, RingGroupCreate(
        name="Mobile", strategy=RgStrategy.SEQUENTIAL, ring_seconds=15,
        members=[Member(kind=MemberKind.EXTERNAL, number="+14155550123")]))
    await world.beside.app[flows_key].route_did(world.partner, acme, world.did,
                                                RouteBody(destination=dest("ring_group", group.id)))
    await world.applied("qacme")
    carrier = world.run(late_answer_scenario(ring_ms=500), "carrier", port=world.sip.carrier_port)
    await asyncio.sleep(0.3)
    caller = world.run(carrier_hold_scenario(3000), DID)
    codes = [await asyncio.to_thread(p.wait, 40) for p in (caller, carrier)]
    assert codes == [0, 0], "\n".join([*(sipp_failure(p) for p in (caller, carrier)), world.asterisk_log()])
    rows: list[asyncpg.Record] = []
    for _ in range(100):  # the recorder commits the call and its leg together
        rows = await world.pool.fetch(
            "SELECT leg, direction, callee, answered_s, retail_micros, id FROM call_records WHERE linkedid IN"
            " (SELECT linkedid FROM call_records WHERE tenant_id = $1 AND callee = '+14155550123') ORDER BY leg",
            acme)
        if rows:
            break
        await asyncio.sleep(0.1)
    assert [(r["leg"] == "", r["direction"], r["callee"]) for r in rows] == [
        (True, "inbound", DID), (False, "outbound", "+14155550123")], rows
    leg = rows[1]
    assert leg["leg"].startswith("PJSIP/carrier-") and leg["answered_s"] >= 2 and leg["retail_micros"] > 0, leg


async def test_another_tenants_queue_is_not_a_destination(world: World) -> None:
    beta = world.tenants["qbeta"]
    theirs = await world.beside.app[queues_key].create(world.partner, beta, QueueCreate(
        name="Beta", members=[QueueMember(number="101")]))
    flows = world.beside.app[flows_key]
    with pytest.raises(Problem) as refused:
        await flows.route_did(world.partner, world.tenants["qacme"], world.did,
                              RouteBody(destination=dest("queue", theirs.id)))
    assert refused.value.status == 422 and refused.value.field == "destination"
    rows = await world.pool.fetch("SELECT interface FROM queue_members WHERE queue_name = $1", f"q-{theirs.id}")
    assert [r["interface"] for r in rows] == ["PJSIP/qbeta_101"]
