"""Voicemail and call recording on a real Asterisk with SIPp, the daemon in-process, mail through
its outbox to a real aiosmtpd (issue 17, "Must show"):

- a call to an extension that rings and is not answered goes to its voicemail; the caller talks
  for 5 s (a tone replayed as RTP); the message is imported, mailed with the audio attached
  (decoding to 5 +- 1 s) and downloadable through the RPC; another tenant reaches none of it;
- a call to an extension recorded "always" has a downloadable recording whose length matches
  the answered call within 1 s and which is not silent.

Every change goes through the services (and so through the flows applier's AMI path).
"""

from __future__ import annotations

import asyncio
import math
import socket
import subprocess
import tempfile
import time
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
from harness import Beside, free_port
from smtp_support import SmtpServer
from phone_world import funded_cast, mailing_daemon, registered_phone
from tenants_e2e import ROOTFS, register_scenario, sipp_as, sipp_failure
from voicemail_support import (answering_phone_scenario, await_mwi, dtmf_key_pcap, gsm_seconds, keying_caller_scenario,
                               talking_caller_scenario, tone_pcap, unanswered_phone_scenario)

from controlplane.flows.plugin import applier_key
from controlplane.recordings.http import services_key as recordings_key
from controlplane.shared.audio import measure, write_wav
from controlplane.tenants.http import tenant_services
from controlplane.tenants.models import ExtensionCreate
from controlplane.voicemail.http import services_key as voicemail_key
from controlplane.voicemail.models import VoicemailUpdate
from controlplane.voicemail.render import TenantSection

pytestmark = [pytest.mark.e2e]
SERVICE = "service-token-voicemail-e2e"
SOUNDS = ROOTFS / "usr/share/asterisk/sounds/en_US_f_Allison"
GREETING_S = 1.0
TALK_S = 5.0
RING_S = TenantSection.__dataclass_fields__["ring_seconds"].default  # how long an unanswered extension rings before voicemail

RMS_FLOOR = 0.01  # -40 dBFS: the caller's tone is about -15 dBFS; silence is 0


@dataclass
class World:
    beside: Beside
    pool: asyncpg.Pool
    smtp: SmtpServer
    partner: str
    tenants: dict[str, str]
    extensions: dict[str, str]  # "<prefix>_<number>" -> extension id
    passwords: dict[str, str]
    base: str
    sip_port: int
    workdir: Path

    def run(self, scenario: str, service: str, *, user: str | None = None, port: int | None = None,
            background: bool = True) -> Any:
        return sipp_as(self, self.beside.procs, self.passwords, scenario, service, user=user, port=port,
                       background=background, timeout="90s")

    async def phone(self, user: str, scenario: str) -> subprocess.Popen[bytes]:
        return await registered_phone(self.run, user, scenario)

    async def rpc(self, path: str, method: str = "GET", *, data: bytes | None = None,
                  content_type: str = "application/json") -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {SERVICE}", "X-Partner-Id": self.partner, "Content-Type": content_type}
        async with aiohttp.ClientSession() as http, http.request(method, self.base + path, data=data,
                                                                 headers=headers) as response:
            return response.status, await response.read()


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, database_dsn: str,
                pool: asyncpg.Pool) -> AsyncIterator[World]:
    workdir = tmp_path_factory.mktemp("voicemail")
    async with mailing_daemon(workdir, "vm", database_dsn, SERVICE) as (beside, smtp, config):
        app = beside.app
        cast = await funded_cast(
            app, pool, "Voicemail", (("vacme", ("101", "102", "103")), ("vbeta", ("101",))),
            lambda number: ExtensionCreate(number=number, display_name="U", voicemail_enabled=number == "101"))
        await app[tenant_services].applier.wait_applied(10)
        for tenant in cast.tenants.values():  # new tenants get their flows contexts with no flow object
            await app[applier_key].wait_applied(tenant, timeout=10)
        yield World(beside, pool, smtp, cast.partner, cast.tenants, cast.extensions, cast.passwords,
                    f"http://127.0.0.1:{config.http.port}", config.asterisk.sip_port, workdir)


def tone_wav(seconds: float) -> bytes:
    return write_wav(array("h", (int(6000 * math.sin(2 * math.pi * 660 * i / 8000))
                                 for i in range(int(seconds * 8000)))))


async def poll(check: Any, timeout: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.25)


async def deposited(world: Any, vm: Any, tenant: str, box: str, mailed_to: str) -> Any:
    """The caller's message in box 101 of ``tenant``, once checked: about TALK_S long, not
    silent and downloadable through the RPC, and mailed to ``mailed_to`` with the same audio
    attached (``world``: a mailing world, with its partner, RPC and SMTP server)."""
    async def listed() -> Any:
        items, _ = await vm.list_messages(world.partner, tenant, box, 20, None)
        return items

    message = (await poll(listed, 20, "the message in the RPC"))[0]
    assert message.mailbox == "101" and abs(message.duration_s - TALK_S) <= 1
    status, audio = await world.rpc(f"/v1/tenants/{tenant}/voicemail/messages/{message.id}/audio")
    assert status == 200
    stats = measure(audio)
    assert abs(stats.seconds - TALK_S) <= 1.0 and stats.rms > RMS_FLOOR, stats

    mail = (await world.smtp.wait_for(1, timeout=20))[0]
    assert mail.rcpt_tos == [mailed_to]
    (filename, content_type, attached), = mail.attachments()
    assert content_type == "audio/wav" and filename and filename.startswith("voicemail-101-")
    assert abs(measure(attached).seconds - TALK_S) <= 1.0
    return message


async def test_unanswered_call_leaves_a_mailed_downloadable_message(world: World) -> None:
    app, acme = world.beside.app, world.tenants["vacme"]
    vm = app[voicemail_key]
    box = world.extensions["vacme_101"]
    # bad input through the RPC: a 422 naming the field, and nothing changed
    route = f"/v1/tenants/{acme}/extensions/{box}/voicemail"
    for path, data, ctype, field in ((route, b'{"pin": "12a"}', "application/json", "pin"),
                                     (route + "/greeting", b"ID3\x03" + bytes(200), "audio/mpeg", "greeting"),
                                     (route + "/greeting", b"ID3\x03" + bytes(200), "audio/wav", "greeting"),
                                     (route + "/greeting", bytes(100), "audio/wav", "greeting"),
                                     (route + "/greeting", bytes(2_000_000), "audio/x-wav", "greeting")):
        status, problem = await world.rpc(path, "PUT", data=data, content_type=ctype)
        assert status == 422 and msgspec.json.decode(problem)["errors"][0]["field"] == field, (path, problem)
    status, settings = await world.rpc(route)
    assert status == 200 and msgspec.json.decode(settings)["pin_set"] is False
    assert msgspec.json.decode(settings)["has_greeting"] is False
    await vm.update(world.partner, acme, box, VoicemailUpdate(pin="4826", email="alice@example.com"))
    await vm.put_greeting(world.partner, acme, box, tone_wav(GREETING_S))
    # 101 rings and never answers (Asterisk cancels it after the ring time); 102 calls it and,
    # once voicemail answered, waits out greeting + instructions + beep, then talks for 5 s.
    phone = await world.phone("vacme_101", unanswered_phone_scenario())
    wait = GREETING_S + gsm_seconds(SOUNDS / "vm-intro.gsm") + gsm_seconds(SOUNDS / "beep.gsm") + 0.3
    pcap = tone_pcap(world.workdir / "talk.pcap", TALK_S)
    started = time.monotonic()
    caller = world.run(talking_caller_scenario(pcap, wait_ms=int(wait * 1000), talk_ms=int(TALK_S * 1000) + 100),
                       "101", user="vacme_102")
    assert await asyncio.to_thread(caller.wait, 90) == 0, sipp_failure(caller)
    # it rang the whole ring time first (not refused at once), and the phone saw nothing unexpected;
    # the phone's SIPp still holds its NOTIFY "call" (another Call-ID), so it is stopped here
    assert time.monotonic() - started >= RING_S + wait + TALK_S - 1
    phone.kill()
    phone.wait()
    assert sipp_failure(phone) == "no SIPp error trace"

    message = await deposited(world, vm, acme, box, "alice@example.com")

    # message waiting: the phone registering again (a new contact) gets the summary, unsolicited
    port = free_port(socket.SOCK_DGRAM)
    done = await asyncio.to_thread(world.run, register_scenario(), "vacme_101", user="vacme_101", port=port,
                                   background=False)
    assert done.returncode == 0
    summary = await asyncio.to_thread(await_mwi, port, 10.0)
    assert "Voice-Message: 1/0" in summary, summary

    # another tenant reaches none of it: not the message, not its audio, not the box
    beta = world.tenants["vbeta"]
    for path in (f"/v1/tenants/{beta}/voicemail/messages/{message.id}",
                 f"/v1/tenants/{beta}/voicemail/messages/{message.id}/audio",
                 f"/v1/tenants/{beta}/extensions/{box}/voicemail"):
        assert (await world.rpc(path))[0] == 404, path
    status, listed_beta = await world.rpc(f"/v1/tenants/{beta}/voicemail/messages")
    assert status == 200 and msgspec.json.decode(listed_beta)["items"] == []


async def test_recorded_call_matches_the_call_and_is_not_silent(world: World) -> None:
    app, acme = world.beside.app, world.tenants["vacme"]
    recordings = app[recordings_key]
    await recordings.put_policy(world.partner, acme, "extension", "103", "always")
    await app[applier_key].wait_applied(acme, timeout=10)
    phone = await world.phone("vacme_103", answering_phone_scenario())
    pcap = tone_pcap(world.workdir / "talk2.pcap", TALK_S)
    # the caller's RTP flows from the answer to its hang-up, as a phone's does (MixMonitor writes
    # what the channels carry: a stretch without any RTP would not be in the file)
    caller = world.run(talking_caller_scenario(pcap, wait_ms=1, talk_ms=int(TALK_S * 1000) + 100),
                       "103", user="vacme_102")
    assert await asyncio.to_thread(caller.wait, 60) == 0, sipp_failure(caller)
    assert await asyncio.to_thread(phone.wait, 10) == 0, sipp_failure(phone)

    async def recorded() -> Any:
        rows, _ = await recordings.list(world.partner, acme, None, 20, None)
        return rows

    recording = (await poll(recorded, 20, "the recording"))[0]
    record = await world.pool.fetchrow("SELECT answered_at, ended_at FROM call_records WHERE id = $1",
                                       recording.call_id)
    assert record is not None and record["answered_at"] is not None
    talked = (record["ended_at"] - record["answered_at"]).total_seconds()
    status, audio = await world.rpc(f"/v1/tenants/{acme}/recordings/{recording.id}/audio")
    assert status == 200
    stats = measure(audio)
    assert abs(stats.seconds - talked) <= 1.0, (stats, talked)
    assert stats.rms > RMS_FLOOR, stats
    beta = world.tenants["vbeta"]
    assert (await world.rpc(f"/v1/tenants/{beta}/recordings/{recording.id}/audio"))[0] == 404
    # call.completed announces the recording and where to fetch it
    bodies = [msgspec.json.decode(r["body"]) for r in await world.pool.fetch(
        "SELECT body FROM events WHERE type = 'call.completed' AND tenant_id = $1", acme)]
    announced = [b["data"].get("recordings") for b in bodies if b["data"]["call"]["id"] == recording.call_id]
    assert announced == [[{"id": recording.id, "audio": f"/v1/tenants/{acme}/recordings/{recording.id}/audio"}]]


async def test_pin_lockout_on_the_phone(world: World) -> None:
    """*97 from the phone: wrong PINs keyed as RFC 2833 digits are counted by the daemon, five lock
    the box (even the right PIN is refused then), a PIN set through the API unlocks it, and a
    right PIN clears the count."""
    app, acme = world.beside.app, world.tenants["vacme"]
    vm, box = app[voicemail_key], world.extensions["vacme_101"]
    await vm.update(world.partner, acme, box, VoicemailUpdate(pin="4826"))

    async def call(keys: list[tuple[int, str]], *, we_hang_up: bool = False) -> None:
        workdir = Path(tempfile.mkdtemp(prefix="keys-", dir=world.workdir))
        proc = world.run(keying_caller_scenario(keys, workdir, end_ms=12000, we_hang_up=we_hang_up), "*97",
                         user="vacme_101")
        assert await asyncio.to_thread(proc.wait, 60) == 0, sipp_failure(proc)

    async def state() -> asyncpg.Record:
        row = await world.pool.fetchrow("SELECT failures, lockouts, locked_until > now() AS locked"
                                        " FROM voicemail_boxes WHERE extension_id = $1", box)
        assert row is not None
        return row

    await call([(1500, "9999#"), (3000, "9999#"), (3000, "9999#")])  # three tries, then Asterisk hangs up
    await poll(lambda: _eq(state(), "failures", 3), 5, "three failures counted")
    await call([(1500, "9999#"), (3000, "9999#")])  # the fifth locks: the third try is refused
    await poll(lambda: _eq(state(), "locked", True), 5, "the box locked")
    assert (await state())["lockouts"] == 1
    await call([(1500, "4826#")])  # the right PIN, but locked: nothing is asked, nothing counted
    assert dict(await state()) == {"failures": 0, "lockouts": 1, "locked": True}

    await vm.update(world.partner, acme, box, VoicemailUpdate(pin="5937"))  # the owner resets it
    assert (await state())["locked"] is not True
    await call([(1500, "1111#"), (3000, "5937#")], we_hang_up=True)  # one wrong, then right: VoiceMailMain
    await poll(lambda: _eq(state(), "failures", 0), 5, "a right PIN clears the count")
    assert (await state())["lockouts"] == 0


async def _eq(row: Any, column: str, value: object) -> bool:
    return bool((await row)[column] == value)


async def test_on_demand_recording_starts_with_star_3(world: World) -> None:
    app, acme = world.beside.app, world.tenants["vacme"]
    recordings = app[recordings_key]
    await recordings.put_policy(world.partner, acme, "extension", "103", "on_demand")
    await app[applier_key].wait_applied(acme, timeout=10)

    async def listed() -> list[Any]:
        rows, _ = await recordings.list(world.partner, acme, None, 100, None)
        return rows

    before = {r.id for r in await listed()}
    keys = [dtmf_key_pcap(world.workdir / f"star3-{i}.pcap", d, i) for i, d in enumerate("*3")]
    for pressed in (False, True):
        phone = await world.phone("vacme_103", answering_phone_scenario())
        pcap = tone_pcap(world.workdir / f"talk-od-{pressed}.pcap", 4.0)
        caller = world.run(talking_caller_scenario(pcap, wait_ms=300, talk_ms=4100,
                                                   keys_first=keys if pressed else ()), "103", user="vacme_102")
        assert await asyncio.to_thread(caller.wait, 60) == 0, sipp_failure(caller)
        assert await asyncio.to_thread(phone.wait, 10) == 0, sipp_failure(phone)
    await asyncio.sleep(3)  # the first call's (empty) recording is settled and dropped meanwhile
    new = await poll(lambda: _new_recordings(listed, before), 20, "the on-demand recording")
    assert len(new) == 1, new  # only the call where *3 was pressed
    stats = measure((await world.rpc(f"/v1/tenants/{acme}/recordings/{new[0].id}/audio"))[1])
    assert 3.0 <= stats.seconds <= 5.5 and stats.rms > RMS_FLOOR, stats


async def _new_recordings(listed: Any, before: set[str]) -> list[Any]:
    return [r for r in await listed() if r.id not in before]
