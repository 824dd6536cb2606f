"""A DID's flow ending in voicemail, and a DID's recording policy, on a real Asterisk with SIPp,
the daemon in-process, mail through its outbox to a real aiosmtpd (issue 17, "Must show"):

- a carrier call to a DID routed to a time condition forced closed (the override: the test
  controls the outcome, not the wall clock) lands in the ``voicemail`` destination of an
  extension; the caller talks for 5 s; the mail with the audio attached arrives at the test's
  SMTP server (decoding to 5 +- 1 s) and the message is downloadable through the RPC;
- a DID recorded "always" (the recordings capability's ``rec-did-*`` run by the DID's entry,
  rendered by flows), and a queue recorded "always" (``rec-q-*`` run by the queue's entry,
  rendered by queues): the answered call has a recording linked to its call record, as long
  as the call talked (within 1 s) and not silent.

The world is test_voicemail_e2e's (media directory, spool, SMTP) plus a carrier DID.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
from flows_support import carrier_dtmf_scenario
from harness import Beside, free_port
from inventory_support import buy_did
from phone_world import mailing_daemon
from smtp_support import SmtpServer
from tenants_e2e import ROOTFS, register_scenario, sipp_as, sipp_failure
from test_voicemail_e2e import GREETING_S, RMS_FLOOR, TALK_S, deposited, poll, tone_wav
from voicemail_support import answering_phone_scenario, gsm_seconds, tone_pcap
from wallet_support import active_funded

from controlplane.flows.http import services_key as flows_key
from controlplane.flows.models import DestinationBody, HoursBody, RouteBody, TimeConditionBody
from controlplane.flows.plugin import applier_key
from controlplane.queues.http import services_key as queues_key
from controlplane.queues.models import QueueCreate, QueueMember, Strategy
from controlplane.recordings.http import services_key as recordings_key
from controlplane.shared.audio import measure
from controlplane.tenants.http import numbering_services, tenant_services
from controlplane.tenants.models import ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate
from controlplane.voicemail.http import services_key as voicemail_key
from controlplane.voicemail.models import VoicemailUpdate

pytestmark = [pytest.mark.e2e]
SERVICE = "service-token-flows-voicemail-e2e"
SOUNDS = ROOTFS / "usr/share/asterisk/sounds/en_US_f_Allison"
DID = "+15015550188"
DID_RECORDED = "+15015550189"
DID_QUEUE = "+15015550190"


@dataclass
class World:
    beside: Beside
    pool: asyncpg.Pool
    smtp: SmtpServer
    partner: str
    tenant: str
    extensions: dict[str, str]  # "<prefix>_<number>" -> extension id
    passwords: dict[str, str]
    dids: dict[str, str]  # number -> DID id
    base: str
    sip_port: int
    workdir: Path

    def run(self, scenario: str, service: str, *, user: str | None = None, port: int | None = None,
            background: bool = True) -> Any:
        return sipp_as(self, self.beside.procs, self.passwords, scenario, service, user=user, port=port,
                       background=background, timeout="90s")

    async def rpc(self, path: str) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {SERVICE}", "X-Partner-Id": self.partner}
        async with aiohttp.ClientSession() as http, http.get(self.base + path, headers=headers) as response:
            return response.status, await response.read()


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, database_dsn: str,
                pool: asyncpg.Pool) -> AsyncIterator[World]:
    workdir = tmp_path_factory.mktemp("flowsvm")
    async with mailing_daemon(workdir, "fvm", database_dsn, SERVICE) as (beside, smtp, config):
        app = beside.app
        tenants_svc, numbering = app[tenant_services], app[numbering_services]
        partner = (await tenants_svc.create_partner(PartnerCreate(name="Flows VM", tier=PartnerTier.BUSINESS))).id
        await active_funded(pool, partner, 100_000_000)
        tenant = (await tenants_svc.create_tenant(partner, TenantCreate(
            name="fvacme", billing_email="a@b.co", sip_prefix="fvacme", timezone="America/Chicago"))).id
        extensions: dict[str, str] = {}
        passwords: dict[str, str] = {}
        for number in ("101", "102"):
            ext = await numbering.create_extension(partner, tenant, ExtensionCreate(
                number=number, display_name="U", voicemail_enabled=number == "101"))
            extensions[ext.sip_username] = ext.id
            passwords[ext.sip_username] = ext.secrets.sip_password
        dids = {n: await buy_did(pool, partner, n, tenant_id=tenant, numbering=numbering)
                for n in (DID, DID_RECORDED, DID_QUEUE)}
        await tenants_svc.applier.wait_applied(10)
        await app[applier_key].wait_applied(tenant, timeout=10)
        yield World(beside, pool, smtp, partner, tenant, extensions, passwords, dids,
                    f"http://127.0.0.1:{config.http.port}", config.asterisk.sip_port, workdir)


def dest(kind: str, ref: str = "") -> DestinationBody:
    return DestinationBody(kind=kind, ref=ref)


def carrier_talking(pcap: Path, *, wait_ms: int, talk_ms: int) -> str:
    """flows_support's carrier call (no auth, a DID as [service]) that, ``wait_ms`` after the
    answer, replays ``pcap`` and hangs up ``talk_ms`` later (a re-INVITE meanwhile is answered).
    A bridged call gets a connected-line re-INVITE at once, which a pause would not take:
    such calls talk from the answer (``wait_ms`` 0: no pause)."""
    scenario = carrier_dtmf_scenario("", wait_ms=max(wait_ms, 1), hold_ms=talk_ms)
    pause = f'  <pause milliseconds="{max(wait_ms, 1)}"/>\n'
    assert scenario.count(pause) == 1
    play = f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
    return scenario.replace(pause, (pause if wait_ms > 0 else "") + play)




async def test_closed_time_condition_sends_the_did_to_a_mailed_downloadable_voicemail(world: World) -> None:
    app, acme = world.beside.app, world.tenant
    vm, flows = app[voicemail_key], app[flows_key]
    box = world.extensions["fvacme_101"]
    await vm.update(world.partner, acme, box, VoicemailUpdate(pin="4826", email="owner@example.com"))
    await vm.put_greeting(world.partner, acme, box, tone_wav(GREETING_S))
    # hours that would be open all week: only the override closes it, whatever the test's clock
    tc = await flows.save_time_condition(world.partner, acme, TimeConditionBody(
        name="Hours", override="closed",
        hours=[HoursBody(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start="00:00", end="24:00")],
        open_destination=dest("extension", "102"), closed_destination=dest("voicemail", "101")))
    await flows.route_did(world.partner, acme, world.dids[DID], RouteBody(destination=dest("time_condition", tc.id)))
    await app[applier_key].wait_applied(acme, timeout=10)
    wait = GREETING_S + gsm_seconds(SOUNDS / "vm-intro.gsm") + gsm_seconds(SOUNDS / "beep.gsm") + 0.3
    pcap = tone_pcap(world.workdir / "talk.pcap", TALK_S)
    caller = world.run(carrier_talking(pcap, wait_ms=int(wait * 1000), talk_ms=int(TALK_S * 1000) + 100), DID)
    assert await asyncio.to_thread(caller.wait, 90) == 0, sipp_failure(caller)

    # a message in 101's box: the closed branch (open would have rung 102, which is not registered)
    await deposited(world, vm, acme, box, "owner@example.com")


async def _recorded_call(world: World, did: str, scope: str, ref: str) -> None:
    """A carrier call to ``did`` answered by 102 and talked 3 s: one recording of ``scope``/``ref``,
    linked to the tenant's answered call record, as long as the call talked, not silent."""
    acme = world.tenant
    recordings = world.beside.app[recordings_key]
    port = free_port(socket.SOCK_DGRAM)
    done = await asyncio.to_thread(world.run, register_scenario(), "fvacme_102", user="fvacme_102", port=port,
                                   background=False)
    assert done.returncode == 0
    phone = world.run(answering_phone_scenario(), "fvacme_102", port=port)
    await asyncio.sleep(0.3)
    pcap = tone_pcap(world.workdir / f"talk-{scope}.pcap", 3.0)
    caller = world.run(carrier_talking(pcap, wait_ms=0, talk_ms=3100), did)
    assert await asyncio.to_thread(caller.wait, 60) == 0, sipp_failure(caller)
    assert await asyncio.to_thread(phone.wait, 10) == 0, sipp_failure(phone)

    async def recorded() -> Any:
        rows, _ = await recordings.list(world.partner, acme, None, 20, None)
        return [r for r in rows if r.scope == scope]

    recording, = await poll(recorded, 20, f"the {scope}'s recording")
    assert recording.ref == ref
    record = await world.pool.fetchrow("SELECT tenant_id, answered_at, ended_at FROM call_records WHERE id = $1",
                                       recording.call_id)
    assert record is not None and str(record["tenant_id"]) == acme and record["answered_at"] is not None
    talked = (record["ended_at"] - record["answered_at"]).total_seconds()
    status, audio = await world.rpc(f"/v1/tenants/{acme}/recordings/{recording.id}/audio")
    assert status == 200
    stats = measure(audio)
    assert abs(stats.seconds - talked) <= 1.0 and stats.rms > RMS_FLOOR, (stats, talked)


async def test_a_did_recorded_always_links_the_recording_to_the_call(world: World) -> None:
    app, acme = world.beside.app, world.tenant
    await app[flows_key].route_did(world.partner, acme, world.dids[DID_RECORDED],
                                   RouteBody(destination=dest("extension", "102")))
    await app[recordings_key].put_policy(world.partner, acme, "did", DID_RECORDED, "always")
    await app[applier_key].wait_applied(acme, timeout=10)
    await _recorded_call(world, DID_RECORDED, "did", DID_RECORDED)


async def test_a_queue_recorded_always_links_the_recording_to_the_call(world: World) -> None:
    app, acme = world.beside.app, world.tenant
    queue = await app[queues_key].create(world.partner, acme, QueueCreate(
        name="Recorded", strategy=Strategy.RING_ALL, ring_seconds=8, max_wait_seconds=30,
        members=[QueueMember(number="102")]))
    await app[flows_key].route_did(world.partner, acme, world.dids[DID_QUEUE],
                                   RouteBody(destination=dest("queue", queue.id)))
    await app[recordings_key].put_policy(world.partner, acme, "queue", queue.id, "always")
    await app[applier_key].wait_applied(acme, timeout=10)
    await _recorded_call(world, DID_QUEUE, "queue", queue.id)
