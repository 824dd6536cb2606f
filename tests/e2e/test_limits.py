"""Usage limits in the call path on a real Asterisk: the daemon in-process (its FastAGI
admission server, astdb keys over AMI), phones (SIPp and a small digest UAC) calling
through tenant dialplans to a SIPp carrier UAS that keeps every call up, and SIPp
emergency trunks.

The 120 s call dominates: it starts first (test 1) and is checked last; the
other cases run meanwhile on other tenants. The fail-policy cases move the global
astdb keys, so they run after the other admissions and put the keys back.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from wallet_support import active_funded
from harness import astdb_get, calls_config, daemon_beside, free_media_port, free_port, until_bound
from tenants_e2e import answer_scenario, call_scenario, register_scenario, sipp, uas_scenario

from controlplane.asterisk.ami import AmiClient
from controlplane.profiles.models import AssignmentBody
from controlplane.profiles.services import ProfileServices
from controlplane.config import HttpConfig
from controlplane.limits.http import limit_services
from controlplane.limits.models import LimitsBody
from controlplane.limits.plugin import agi_key
from controlplane.numbers.e911_services import E911Services
from controlplane.numbers.http import number_services
from controlplane.numbers.models import E911Address
from controlplane.tenants.http import numbering_services, tenant_services
from controlplane.tenants.models import (ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate,
                                         TenantStatus, TenantUpdate)
from provisioning.dialplan import AdmissionStep
from provisioning.names import REALM

pytestmark = [pytest.mark.e2e]
ADDRESS = E911Address(street="1234 Main St", unit="Floor 2", city="Little Rock", state="AR", zip="72211")
NUMBER = "5015550100"  # local, billable: 60/6 at $0.05/min
INCREMENT = 6


# ---------------------------------------------------------------- SIP: carrier UAS, small UAC

def uas(port: int, scenario: str) -> subprocess.Popen[bytes]:
    """A SIPp UAS on ``port`` answering any number of calls (killed at teardown)."""
    workdir = Path(tempfile.mkdtemp(prefix="sipp-uas-"))
    (workdir / "uas.xml").write_text(scenario)
    return until_bound(subprocess.Popen(
        ["sipp", "-sf", "uas.xml", "-i", "127.0.0.1", "-p", str(port), "-m", "100000", "-l", "200",
         "-mp", str(free_media_port()), "-nostdin", "-trace_err", "-bind_local"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), port)


@dataclass
class CallResult:
    code: int
    answered_at: float | None = None
    ended_at: float | None = None
    ended_by: str = ""  # "asterisk" (BYE received) or "us"
    requests: list[str] = field(default_factory=list)  # in-dialog requests from Asterisk

    @property
    def duration(self) -> float:
        assert self.answered_at is not None and self.ended_at is not None
        return self.ended_at - self.answered_at


@dataclass
class Uac:
    """One authenticated INVITE; on 200 it holds the call until ``hold_s``, a BYE from
    Asterisk, or ``hangup`` is set. A thread per call (asyncio.to_thread)."""

    sip_port: int
    user: str
    password: str
    number: str
    hold_s: float = 0.0
    hangup: threading.Event = field(default_factory=threading.Event)
    answered: threading.Event = field(default_factory=threading.Event)

    def run(self) -> CallResult:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        call_id, tag = secrets.token_hex(8), secrets.token_hex(4)
        uri = f"sip:{self.number}@127.0.0.1:{self.sip_port}"
        sdp = (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {port + 2} RTP/AVP 0\r\n")

        def send(method: str, cseq: int, extra: str = "", body: str = "", to_tag: str = "") -> None:
            branch = "z9hG4bK" + secrets.token_hex(6)
            msg = (f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n"
                   f"From: <sip:{self.user}@127.0.0.1>;tag={tag}\r\nTo: <{uri}>{to_tag}\r\nCall-ID: {call_id}\r\n"
                   f"CSeq: {cseq} {method}\r\nContact: <sip:{self.user}@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n"
                   + extra + ("Content-Type: application/sdp\r\n" if body else "")
                   + f"Content-Length: {len(body.encode())}\r\n\r\n" + body)
            sock.sendto(msg.encode(), ("127.0.0.1", self.sip_port))

        def final(cseq: int, deadline: float) -> str:
            while True:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                data = sock.recv(65535).decode("utf-8", "replace")
                if data.startswith("SIP/2.0") and int(data.split(" ", 2)[1]) >= 200 and \
                        re.search(rf"^CSeq:\s*{cseq} INVITE", data, re.M | re.I):
                    return data

        try:
            send("INVITE", 1, body=sdp)
            reply = final(1, time.monotonic() + 10)
            send("ACK", 1)
            if reply.split(" ", 2)[1] not in ("401", "407"):
                return CallResult(int(reply.split(" ", 2)[1]))
            nonce = re.search(r'nonce="([^"]+)"', reply).group(1)  # type: ignore[union-attr]
            ha1 = hashlib.md5(f"{self.user}:{REALM}:{self.password}".encode()).hexdigest()
            ha2 = hashlib.md5(f"INVITE:{uri}".encode()).hexdigest()
            response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
            auth = (f'Authorization: Digest username="{self.user}", realm="{REALM}", nonce="{nonce}",'
                    f' uri="{uri}", response="{response}", algorithm=MD5\r\n')
            send("INVITE", 2, auth, sdp)
            reply = final(2, time.monotonic() + 30)
            code = int(reply.split(" ", 2)[1])
            match = re.search(r"^To:.*;tag=([^;\r\n>]+)", reply, re.M | re.I)
            to_tag = f";tag={match.group(1)}" if match else ""
            send("ACK", 2, to_tag=to_tag)
            if not 200 <= code < 300:
                return CallResult(code)
            result = CallResult(code, answered_at=time.monotonic())
            self.answered.set()
            deadline = result.answered_at + self.hold_s  # type: ignore[operator]
            while time.monotonic() < deadline and not self.hangup.is_set():
                sock.settimeout(min(0.2, max(deadline - time.monotonic(), 0.01)))
                try:
                    data = sock.recv(65535).decode("utf-8", "replace")
                except TimeoutError:
                    continue
                if data.startswith("SIP/2.0 200") and re.search(r"^CSeq:\s*2 INVITE", data, re.M | re.I):
                    # A retransmitted 200: our ACK was lost (UDP under a burst of calls).
                    # Without a new one Asterisk ends the dialog after 64*T1 = 32 s.
                    send("ACK", 2, to_tag=to_tag)
                    continue
                method = data.split(" ", 1)[0]
                if data.startswith("SIP/2.0") or method == "ACK":
                    continue
                # Asterisk may re-INVITE (a connected-line update after the answer): a phone
                # that ignored it would see the call ended after Timer B (64*T1 = 32 s).
                result.requests.append(method)
                head = "\r\n".join(line for line in data.split("\r\n")
                                   if re.match(r"(Via|From|To|Call-ID|CSeq):", line, re.I))
                offer = sdp if method == "INVITE" else ""
                sock.sendto((f"SIP/2.0 200 OK\r\n{head}\r\nContact: <sip:{self.user}@127.0.0.1:{port}>\r\n"
                             + ("Content-Type: application/sdp\r\n" if offer else "")
                             + f"Content-Length: {len(offer)}\r\n\r\n{offer}").encode(),
                            ("127.0.0.1", self.sip_port))
                if method == "BYE":
                    result.ended_at, result.ended_by = time.monotonic(), "asterisk"
                    return result
            result.ended_at, result.ended_by = time.monotonic(), "us"
            send("BYE", 3, to_tag=to_tag)
            return result
        finally:
            sock.close()


# ---------------------------------------------------------------- the world

@dataclass
class World:
    pool: asyncpg.Pool
    ami: AmiClient
    app: Any
    sip_port: int
    agi_address: str
    partner: str
    tenants: dict[str, str]  # prefix -> tenant id
    passwords: dict[str, str]
    procs: list[subprocess.Popen[bytes]]
    running: dict[str, Any] = field(default_factory=dict)

    def uac(self, prefix: str, number: str, hold_s: float = 0.0, ext: str = "101") -> Uac:
        user = f"{prefix}_{ext}"
        return Uac(self.sip_port, user, self.passwords[user], number, hold_s)

    async def call(self, prefix: str, number: str, hold_s: float = 0.0, ext: str = "101") -> CallResult:
        return await asyncio.to_thread(self.uac(prefix, number, hold_s, ext).run)

    async def limits(self, prefix: str, body: LimitsBody) -> None:
        await self.app[limit_services].put(self.partner, self.tenants[prefix], body)

    async def db_put(self, key: str, value: str) -> None:
        await self.ami.action({"Action": "DBPut", "Family": "controlplane", "Key": key, "Val": value})

    async def db_get(self, key: str) -> str | None:
        return await astdb_get(self.ami, key)


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, database_dsn: str,
                pool: asyncpg.Pool) -> AsyncIterator[World]:
    config = calls_config(tmp_path_factory.mktemp("limits"), instance=f"limits{os.getpid()}",
                          dsn=database_dsn, http=HttpConfig(port=free_port(), service_token="t"), emergency=True)
    async with daemon_beside(config, database_dsn) as beside:
        ami, app, procs = beside.ami, beside.app, beside.procs
        tenants = app[tenant_services]
        numbering, numbers = app[numbering_services], app[number_services]
        partner = (await tenants.create_partner(PartnerCreate(name="Limits", tier=PartnerTier.BUSINESS))).id
        await active_funded(pool, partner, 100_000_000)
        await numbers.load_inventory("npa,nxx,first,last,state,city,rate_center\n"
                                     "501,555,100,199,AR,Little Rock,LTLROCK\n")
        ids, passwords = {}, {}
        for prefix in ("cap", "race", "conc", "fail", "low", "susp"):
            t = await tenants.create_tenant(partner, TenantCreate(name=prefix, billing_email="x@y.co",
                                                                  sip_prefix=prefix))
            ids[prefix] = t.id
            for number in ("101", "102"):
                c = await numbering.create_extension(partner, t.id, ExtensionCreate(number=number,
                                                                                    display_name="U"))
                passwords[c.sip_username] = c.secrets.sip_password
                if prefix == "cap" and number == "101":
                    (did,) = (await numbers.purchase(partner, ["+15015550101"])).numbers
                    await numbers.assign(partner, did.id, t.id, c.id)
                    await E911Services(numbers).register(partner, did.id, ADDRESS)
            await ProfileServices(pool).assign(partner, t.id, AssignmentBody(
                per_minute_micros=50_000, min_seconds=60, increment_seconds=INCREMENT))
        await tenants.applier.apply_dialplan(force=True)
        procs += [uas(config.carrier.port, uas_scenario(bye_timeout_ms=300_000)),
                  uas(config.emergency.trunk_port, uas_scenario(bye_timeout_ms=60_000)),
                  uas(config.emergency.relay_port, uas_scenario(bye_timeout_ms=60_000))]
        address = f"agi://127.0.0.1:{app[agi_key].port}"
        w = World(pool, ami, app, config.asterisk.sip_port, address, partner, ids, passwords, procs)
        yield w


async def wait_for(predicate: Any, timeout: float, what: str, period: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(period)
    raise AssertionError(f"timed out waiting for {what}")


async def records(pool: asyncpg.Pool, tenant: str) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM call_records WHERE tenant_id = $1 ORDER BY started_at", tenant)


# ---------------------------------------------------------------- the cases

async def test_the_daemon_publishes_the_admission_address_over_ami(world: World) -> None:
    async def published() -> bool:
        return await world.db_get("admission") == world.agi_address
    await wait_for(published, 15, "controlplane/admission in astdb")
    # The fail policy lives in the rendered dialplan (config), not in astdb: the old key is removed.
    assert await world.db_get("admission_fail") is None


async def test_1_a_call_with_two_minutes_left_starts(world: World) -> None:
    """SIPp phone -> carrier UAS; checked (cut at 120 s) by the last test of the module."""
    await world.limits("cap", LimitsBody(monthly_minutes=2, auto_suspend=True))
    scenario = call_scenario(auth=True, expect_bye=True).replace('timeout="15000"', 'timeout="200000"')
    user = "cap_101"
    proc = sipp(SimpleNamespace(sip_port=world.sip_port), scenario, NUMBER, user=user,  # type: ignore[arg-type]
                password=world.passwords[user], timeout="200s", background=True)
    assert isinstance(proc, subprocess.Popen)
    world.procs.append(proc)
    world.running["cap"] = (proc, time.monotonic())

    async def answered() -> bool:
        return bool(await world.pool.fetchval(
            "SELECT count(*) FROM calls_active WHERE tenant_id = $1 AND answered_at IS NOT NULL",
            world.tenants["cap"]))
    await wait_for(answered, 15, "the 2-minute call to be answered")


async def test_2_a_lowered_cap_shortens_a_call_in_progress(world: World) -> None:
    """Checked by test_y: the daemon re-times the call in Asterisk (AMI Setvar TIMEOUT)."""
    await world.limits("low", LimitsBody(monthly_minutes=10))
    uac = world.uac("low", NUMBER, hold_s=180)
    task = asyncio.create_task(asyncio.to_thread(uac.run))
    assert await asyncio.to_thread(uac.answered.wait, 15), "the call was not answered"
    await world.limits("low", LimitsBody(monthly_minutes=1))
    world.running["low"] = (task, time.monotonic())


async def test_suspending_a_tenant_ends_its_calls_in_progress(world: World) -> None:
    await world.limits("susp", LimitsBody(monthly_minutes=100))
    uac = world.uac("susp", NUMBER, hold_s=60)
    task = asyncio.create_task(asyncio.to_thread(uac.run))
    assert await asyncio.to_thread(uac.answered.wait, 15), "the call was not answered"
    suspended_at = time.monotonic()
    await world.app[tenant_services].update_tenant(world.partner, world.tenants["susp"],
                                                   TenantUpdate(status=TenantStatus.SUSPENDED))
    # Admission knew before the update returned (tenant_status_changed), not by a poll.
    assert world.app[limit_services].engine.tenants[world.tenants["susp"]].status == "SUSPENDED"
    result = await asyncio.wait_for(task, 30)
    assert result.ended_by == "asterisk", result
    assert result.ended_at is not None and result.ended_at - suspended_at < 10, result


async def test_twenty_simultaneous_calls_with_sixty_seconds_left(world: World) -> None:
    await world.limits("race", LimitsBody(monthly_minutes=1))
    results = await asyncio.gather(*(world.call("race", NUMBER, hold_s=90) for _ in range(20)))
    codes = sorted(r.code for r in results)
    assert codes == [200] + [403] * 19, codes
    (admitted,) = [r for r in results if r.code == 200]
    assert admitted.ended_by == "asterisk" and 58 <= admitted.duration <= 62, admitted  # L(59000)
    rows = await wait_for(lambda: _answered_records(world, "race", 1), 15, "the race call's record")
    total = sum(r["billable_s"] for r in rows)
    assert 0 < total <= 60 + INCREMENT, [(r["billable_s"], r["disposition"]) for r in rows]


async def _answered_records(world: World, prefix: str, n: int) -> list[asyncpg.Record] | None:
    rows = [r for r in await records(world.pool, world.tenants[prefix]) if r["disposition"] == "ANSWERED"]
    return rows if len(rows) >= n else None


async def test_the_fourth_simultaneous_call_is_busy_then_a_slot_frees(world: World) -> None:
    await world.limits("conc", LimitsBody(max_outbound_calls=3))
    uacs = [world.uac("conc", NUMBER, hold_s=60) for _ in range(3)]
    tasks = [asyncio.create_task(asyncio.to_thread(u.run)) for u in uacs]
    try:
        for u in uacs:
            assert await asyncio.to_thread(u.answered.wait, 15), "a call under the cap was not answered"
        fourth = await world.call("conc", NUMBER)
        assert fourth.code == 486, fourth
        uacs[0].hangup.set()
        assert (await tasks[0]).code == 200
        await wait_for(lambda: _answered_records(world, "conc", 1), 15, "the ended call's record")
        fifth = await world.call("conc", NUMBER, hold_s=1)
        assert fifth.code == 200, fifth
    finally:
        for u in uacs:
            u.hangup.set()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_fail_policy_when_admission_is_unreachable(world: World) -> None:
    """Closed (default): billable refused with 503; internal and 911 go on. Open (rendered
    from limits.fail_open, as a daemon configured so renders it): billable goes on."""
    phone = await _register_answering(world, "fail_102")
    dead = free_port()
    applier = world.app[tenant_services].applier

    async def policy(step: AdmissionStep) -> None:
        applier.admission = step
        await applier.apply_dialplan(force=True)
    try:
        await world.db_put("admission", f"agi://127.0.0.1:{dead}")
        assert (await world.call("fail", NUMBER, hold_s=1)).code == 503
        assert (await world.call("fail", "102", hold_s=1)).code == 200
        assert (await world.call("fail", "911", hold_s=1)).code == 200
        await policy(AdmissionStep.FAIL_OPEN)
        assert (await world.call("fail", NUMBER, hold_s=1)).code == 200
        # A daemon that accepts but never answers: the AGI read timeout, then the policy.
        hung = await asyncio.start_server(lambda r, w: asyncio.sleep(3600), "127.0.0.1", 0)
        try:
            await world.db_put("admission", f"agi://127.0.0.1:{hung.sockets[0].getsockname()[1]}")
            await policy(AdmissionStep.FAIL_CLOSED)
            started = time.monotonic()
            assert (await world.call("fail", NUMBER, hold_s=1)).code == 503
            assert time.monotonic() - started < 5
            await policy(AdmissionStep.FAIL_OPEN)
            assert (await world.call("fail", NUMBER, hold_s=1)).code == 200
        finally:
            hung.close()
    finally:
        await world.db_put("admission", world.agi_address)
        await policy(AdmissionStep.FAIL_CLOSED)
        phone.kill()
        phone.wait()


async def _register_answering(world: World, user: str) -> subprocess.Popen[bytes]:
    port = free_port(socket.SOCK_DGRAM)
    target = SimpleNamespace(sip_port=world.sip_port)
    reg = await asyncio.to_thread(sipp, target, register_scenario(), user, user=user,  # type: ignore[arg-type]
                                  password=world.passwords[user], port=port)
    assert reg.returncode == 0, f"{user} did not register"
    scenario = answer_scenario(60000)
    proc = sipp(target, scenario.replace("<recv request=\"INVITE\"", "<recv request=\"INVITE\""),  # type: ignore[arg-type]
                user, background=True, port=port, timeout="120s")
    assert isinstance(proc, subprocess.Popen)
    world.procs.append(proc)
    return proc


async def test_y_the_lowered_cap_cut_the_call_in_progress(world: World) -> None:
    task, lowered_at = world.running["low"]
    result = await asyncio.wait_for(task, 120)
    # 10 minutes were granted at admission; the cap fell to 1 minute a moment after the answer.
    assert result.ended_by == "asterisk" and 50 <= result.duration <= 62, result
    assert result.ended_at is not None and result.ended_at - lowered_at > 40, "ended, not re-timed"
    (row,) = await wait_for(lambda: _answered_records(world, "low", 1), 15, "the shortened call's record")
    assert row["billable_s"] <= 60 + INCREMENT, row["billable_s"]


async def test_z_the_two_minute_call_was_cut_the_next_refused_911_admitted(world: World) -> None:
    proc, started = world.running["cap"]
    code = await asyncio.to_thread(proc.wait, 200)
    assert code == 0, "the SIPp phone did not get Asterisk's BYE: " + proc.stderr.read().decode()[-1500:]
    rows = await wait_for(lambda: _answered_records(world, "cap", 1), 15, "the 2-minute call's record")
    (row,) = rows
    assert 120 - INCREMENT <= row["answered_s"] <= 120 + INCREMENT, row["answered_s"]
    assert row["billable_s"] <= 120 + INCREMENT, row["billable_s"]
    tenant = world.tenants["cap"]

    async def suspended() -> bool:
        return await world.pool.fetchval("SELECT status FROM tenants WHERE id = $1", tenant) == "SUSPENDED"
    await wait_for(suspended, 15, "auto-suspension at the cap")
    assert await world.pool.fetchval("SELECT count(*) FROM events WHERE type = 'usage.cap_reached'"
                                     " AND tenant_id = $1", tenant) == 1
    await asyncio.sleep(1.5)  # the applier's debounced dialplan reload
    assert (await world.call("cap", NUMBER, hold_s=1)).code == 403
    emergency = await world.call("cap", "911", hold_s=1)
    assert emergency.code == 200

    async def reached() -> str | None:
        return await world.pool.fetchval(
            "SELECT dstchannel FROM asterisk_cdr WHERE dst = '911' AND accountcode = $1"
            " AND disposition = 'ANSWERED' ORDER BY start DESC LIMIT 1", tenant)
    dst = await wait_for(reached, 10, "the 911 CDR")
    assert dst.startswith("PJSIP/cp-emergency-") and "relay" not in dst, dst
