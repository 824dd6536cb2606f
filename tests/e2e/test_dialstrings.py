"""Dial strings on a real Asterisk: what reaches the carrier, as which number, and the
admission step's fail policy (issue 12 items 1 and 5).

The daemon runs in-process (its FastAGI admission, its call recorder); phones are a
small digest UAC (any bytes in the Request-URI, percent-encoded as a phone would);
the carrier is a small UAS here that records the Request-URI of every INVITE it gets
and answers it. The rendered dialplan is read back from the instance and run through
the unit tests' model of Asterisk (tests/unit/provisioning/dialsim.py): on a corpus,
the real Asterisk, that model and the Python rule (cdr_ingest.dialing) must agree.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import asyncpg
import msgspec
import pytest
from wallet_support import active_funded
from harness import ami_client, astdb_get, asterisk_instance, daemon_files, external, free_port, make_config
from tenants_e2e import sip_invite_status

from cdr_ingest.dialing import destination
from controlplane.asterisk.ami import AmiClient
from controlplane.profiles import store as profiles_store
from controlplane.profiles.models import AssignmentBody
from controlplane.profiles.services import ProfileServices
from controlplane.config import CallsConfig, CarrierConfig, Config, DatabaseConfig, HttpConfig, LimitsConfig
from controlplane.daemon import Daemon
from controlplane.limits.http import limit_services
from controlplane.limits.models import LimitsBody
from controlplane.limits.plugin import agi_key
from controlplane.limits.policy import Decision
from controlplane.tenants.http import numbering_services, tenant_services
from controlplane.tenants.models import ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate
from controlplane.tenants.plugin import DIALPLAN_FILE
from provisioning.dialplan import AdmissionStep
from provisioning.names import REALM

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "provisioning"))
from dialsim import dial as simulate  # noqa: E402

pytestmark = [pytest.mark.e2e]
OBFUSCATED = ["+1212555*0100", "011*442071234567", "+101"]
NUMBER = "2125550100"  # local: rated by the tier table and the tenant's profile


# ---------------------------------------------------------------- the carrier

class Carrier:
    """A UDP UAS: records each INVITE's Request-URI user, answers 200 (with SDP), then
    takes the ACK and the BYE. Runs in a thread for the whole module."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.invites: list[str] = []  # Request-URI users, in arrival order (retransmissions once)
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            text = data.decode("utf-8", "replace")
            method = text.split(" ", 1)[0]
            if text.startswith("SIP/2.0") or method == "ACK":
                continue
            head = "\r\n".join(line for line in text.split("\r\n")
                               if re.match(r"(Via|From|To|Call-ID|CSeq):", line, re.I))
            sdp = ""
            if method == "INVITE":
                call_id = re.search(r"^Call-ID:\s*(\S+)", text, re.M | re.I)
                key = call_id.group(1) if call_id else text
                if key not in self._seen:
                    self._seen.add(key)
                    self.invites.append(unquote(text.split(" ", 2)[1].split(":", 1)[1].split("@", 1)[0]))
                tag = ";tag=" + secrets.token_hex(4)
                head = "\r\n".join(line + tag if re.match(r"To:", line, re.I) else line
                                     for line in head.split("\r\n"))
                sdp = (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                       f"m=audio {self.sock.getsockname()[1] + 2} RTP/AVP 0\r\n")
            reply = (f"SIP/2.0 200 OK\r\n{head}\r\nContact: <sip:carrier@127.0.0.1:{self.sock.getsockname()[1]}>\r\n"
                     + ("Content-Type: application/sdp\r\n" if sdp else "")
                     + f"Content-Length: {len(sdp)}\r\n\r\n{sdp}")
            self.sock.sendto(reply.encode(), peer)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


# ---------------------------------------------------------------- the world

@dataclass
class World:
    pool: asyncpg.Pool
    ami: AmiClient
    app: Any
    sip_port: int
    agi_address: str
    partner: str
    tenants: dict[str, str]
    passwords: dict[str, str]
    carrier: Carrier
    dialplan: Path
    config: Config
    decisions: list[Decision] = field(default_factory=list)

    async def call(self, prefix: str, dialled: str, ext: str = "101") -> int:
        """The final SIP status a phone of ``prefix`` gets for ``dialled`` (2xx calls are ended at once)."""
        user = f"{prefix}_{ext}"
        return await asyncio.to_thread(sip_invite_status, self.sip_port, user, self.passwords[user],
                                       quote(dialled, safe="*+&"), REALM)

    async def db_get(self, key: str) -> str | None:
        return await astdb_get(self.ami, key)


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, database_dsn: str,
                pool: asyncpg.Pool) -> AsyncIterator[World]:
    config = make_config(tmp_path_factory.mktemp("dialstrings"), instance=f"dial{os.getpid()}",
                         http=HttpConfig(port=free_port(), service_token="t"),
                         database=DatabaseConfig(dsn=database_dsn),
                         carrier=CarrierConfig(host="127.0.0.1", port=free_port(socket.SOCK_DGRAM)),
                         calls=CallsConfig(reconcile_seconds=1.0, settle_seconds=1.0),
                         limits=LimitsConfig(agi_port=free_port()))
    extra = await daemon_files(config, database_dsn)
    carrier = Carrier(config.carrier.port)
    with asterisk_instance(config, extra) as runner:
        ami = await ami_client(config)
        daemon = Daemon(external(config))
        await daemon.start()
        try:
            assert daemon.http is not None and runner.etc_dir is not None
            app = daemon.http.app
            tenants, numbering = app[tenant_services], app[numbering_services]
            dialplan = Path(runner.etc_dir) / DIALPLAN_FILE
            tenants.applier.dialplan_path = dialplan  # an external Asterisk: write this instance's file
            partner = (await tenants.create_partner(PartnerCreate(name="Dial", tier=PartnerTier.BUSINESS))).id
            await active_funded(pool, partner, 100_000_000)
            ids, passwords = {}, {}
            for prefix in ("spent", "open", "rated"):
                t = await tenants.create_tenant(partner, TenantCreate(name=prefix, billing_email="x@y.co",
                                                                      sip_prefix=prefix))
                ids[prefix] = t.id
                c = await numbering.create_extension(partner, t.id, ExtensionCreate(number="101", display_name="U"))
                passwords[c.sip_username] = c.secrets.sip_password
                await ProfileServices(pool).assign(partner, t.id, AssignmentBody(
                    per_minute_micros=50_000, min_seconds=60, increment_seconds=6))
            await tenants.applier.apply_dialplan(force=True)
            w = World(pool, ami, app, config.asterisk.sip_port, f"agi://127.0.0.1:{app[agi_key].port}",
                      partner, ids, passwords, carrier, dialplan, config)
            server = app[agi_key]
            admit = server.admit

            async def tapped(*args: Any) -> Decision:  # what admission decided, number included
                decision = await admit(*args)
                w.decisions.append(decision)
                return decision
            server.admit = tapped

            async def published() -> bool:
                return await w.db_get("admission") == w.agi_address
            await wait_for(published, 15, "controlplane/admission in astdb")
            yield w
        finally:
            await daemon.stop()
            await ami.close()
            carrier.close()


async def wait_for(predicate: Any, timeout: float, what: str, period: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(period)
    raise AssertionError(f"timed out waiting for {what}")


async def record_of(world: World, tenant: str, n: int) -> list[asyncpg.Record]:
    async def rows() -> list[asyncpg.Record] | None:
        found = await world.pool.fetch("SELECT * FROM call_records WHERE tenant_id = $1 ORDER BY started_at",
                                       world.tenants[tenant])
        return found if len(found) >= n else None
    return await wait_for(rows, 15, f"{n} call record(s) of {tenant}")


# ---------------------------------------------------------------- the cases

async def test_a_normal_call_the_trunk_the_record_and_admission_see_one_number(world: World) -> None:
    await world.app[limit_services].put(world.partner, world.tenants["rated"],
                                        LimitsBody(monthly_spend_micros=10**9))
    before, decided = len(world.carrier.invites), len(world.decisions)
    assert await world.call("rated", NUMBER) == 200
    assert world.carrier.invites[before:] == ["+12125550100"]
    (decision,) = world.decisions[decided:]
    assert decision.admit and decision.number == "+12125550100" and decision.limit_s is not None
    (row,) = await record_of(world, "rated", 1)
    assert (row["callee"], row["direction"], row["call_class"]) == ("+12125550100", "outbound", "local")


async def test_no_wholesale_rate_under_a_cap_is_refused_and_recorded_with_its_class(world: World) -> None:
    """International has no tier price and no platform deck is configured here: no partner rate."""
    before, decided = len(world.carrier.invites), len(world.decisions)
    assert await world.call("rated", "011442071234567") == 403
    assert world.carrier.invites[before:] == []
    (decision,) = world.decisions[decided:]
    assert (decision.admit, decision.reason.value, decision.number) == (False, "no_rate", "+442071234567")
    rows = await record_of(world, "rated", 2)
    row = rows[-1]
    assert (row["callee"], row["call_class"], row["disposition"]) == ("+442071234567", "international", "FAILED")
    assert (row["billable_s"], row["retail_micros"] or 0) == (0, 0)


async def test_a_tenant_whose_spend_cap_is_used_up(world: World) -> None:
    """One minute of spend beside the period's fees (the cap counts them too: its default
    profile's extension fee): the first call uses it (60 s minimum), then nothing reaches the
    carrier: not the obfuscated strings (refused by PJSIP, exact codes), not a number (403)."""
    async with world.pool.acquire() as conn:
        fees = await profiles_store.fees_at(conn, world.tenants["spent"], datetime.now(UTC))
    assert fees > 0  # Pay-As-You-Go: one extension's monthly fee
    await world.app[limit_services].put(world.partner, world.tenants["spent"],
                                        LimitsBody(monthly_spend_micros=fees + 50_000))
    assert await world.call("spent", NUMBER) == 200
    (row,) = await record_of(world, "spent", 1)
    assert row["retail_micros"] == 50_000
    before = len(world.carrier.invites)
    codes = {dialled: await world.call("spent", dialled) for dialled in OBFUSCATED}
    assert codes == {"+1212555*0100": 404, "011*442071234567": 404, "+101": 404}
    assert await world.call("spent", NUMBER) == 403
    assert await world.call("spent", "+12125550100") == 403
    assert world.carrier.invites[before:] == []


async def test_caps_off_obfuscated_strings_get_their_exact_4xx_and_the_carrier_nothing(world: World) -> None:
    before = len(world.carrier.invites)
    codes = {dialled: await world.call("open", dialled) for dialled in OBFUSCATED}
    assert codes == {"+1212555*0100": 404, "011*442071234567": 404, "+101": 404}
    assert world.carrier.invites[before:] == []


CORPUS = [
    "2125550100", "12125550100", "+12125550100", "01112125550100", "011442071234567", "+442071234567",
    "+29022222", "8005550199",
    "+1212555*0100", "011*442071234567", "+101", "+1212-555-0100", "212-555-0100", "+1212555",
    "+19115550123", "+10125550100", "+121255501001", "+2904567", "0114420712345678901", "*", "12",
    "+12125550100x", "#12125550100", "2125550100#", "+1%32125550100", "1" * 90, "+",
]


async def test_asterisk_the_dialplan_model_and_the_rule_agree_on_a_corpus(world: World) -> None:
    """Caps off: every string either reaches the carrier as destination(string), with a 200,
    or is refused with the exact code the model predicts from the rendered dialplan."""
    rendered = world.dialplan.read_text()
    for dialled in CORPUS:
        before = len(world.carrier.invites)
        code = await world.call("open", dialled)
        heard = world.carrier.invites[before:]
        expected = destination(dialled)
        model = simulate(rendered, "open-internal", dialled, "open_101")
        assert model.number == expected, (dialled, model)
        if expected is None:
            assert (code, heard) == (model.sip, []), dialled
        else:
            assert (code, heard) == (200, [expected]), dialled
    # Asterisk skips '-' when it matches: these two got a channel, and the dial context's
    # digits guard refused them (484), as the model says; their records show what was dialled.
    dashed = {"+1212-555-0100", "212-555-0100"}

    async def guarded() -> bool:
        rows = await world.pool.fetch("SELECT callee, call_class FROM call_records WHERE tenant_id = $1"
                                      " AND callee LIKE '%-%'", world.tenants["open"])
        return {r["callee"] for r in rows} == dashed and {r["call_class"] for r in rows} == {"internal"}
    await wait_for(guarded, 15, "the records of the dashed strings")


async def test_without_the_astdb_address_a_billable_call_gets_503(world: World) -> None:
    before = len(world.carrier.invites)
    await world.ami.action({"Action": "DBDel", "Family": "controlplane", "Key": "admission"})
    try:
        assert await world.db_get("admission") is None
        assert await world.call("open", NUMBER) == 503
        assert await world.call("rated", NUMBER) == 503
        assert world.carrier.invites[before:] == []
    finally:
        await world.ami.action({"Action": "DBPut", "Family": "controlplane", "Key": "admission",
                                "Val": world.agi_address})
    assert await world.call("open", NUMBER) == 200
    assert world.carrier.invites[before:] == ["+12125550100"]


async def test_fail_open_rendered_from_config_lets_a_call_through_without_the_address(world: World) -> None:
    applier = world.app[tenant_services].applier
    before = len(world.carrier.invites)
    await world.ami.action({"Action": "DBDel", "Family": "controlplane", "Key": "admission"})
    try:
        applier.admission = AdmissionStep.FAIL_OPEN  # as a daemon with limits.fail_open: true renders it
        await applier.apply_dialplan(force=True)
        assert await world.call("open", NUMBER) == 200
        assert world.carrier.invites[before:] == ["+12125550100"]
    finally:
        applier.admission = AdmissionStep.FAIL_CLOSED
        await applier.apply_dialplan(force=True)
        await world.ami.action({"Action": "DBPut", "Family": "controlplane", "Key": "admission",
                                "Val": world.agi_address})


async def test_z_limits_disabled_no_admission_step_and_stale_keys_deleted(world: World) -> None:
    """A daemon with limits.enabled false (started beside the first one, on the same Asterisk):
    it deletes the stale keys at start and renders no admission step, so a billable call
    goes to the carrier instead of 503 (a stale address to a dead server is left behind here)."""
    dead = free_port()
    for key, value in (("admission", f"agi://127.0.0.1:{dead}"), ("admission_fail", "closed")):
        await world.ami.action({"Action": "DBPut", "Family": "controlplane", "Key": key, "Val": value})
    config = msgspec.structs.replace(world.config, http=HttpConfig(port=free_port(), service_token="t"),
                                     limits=LimitsConfig(enabled=False, agi_port=free_port()))
    daemon = Daemon(external(config))
    await daemon.start()
    applier = world.app[tenant_services].applier
    try:
        assert daemon.http is not None
        other = daemon.http.app[tenant_services].applier
        assert other.admission is AdmissionStep.OFF

        async def gone() -> bool:
            return await world.db_get("admission") is None and await world.db_get("admission_fail") is None
        await wait_for(gone, 15, "the stale astdb keys to be deleted")
        other.dialplan_path = world.dialplan
        await other.apply_dialplan(force=True)
        assert "cp-admit" not in world.dialplan.read_text().replace("; Call admission: off", "")
        before = len(world.carrier.invites)
        assert await world.call("open", NUMBER) == 200
        assert world.carrier.invites[before:] == ["+12125550100"]
    finally:
        await daemon.stop()
        await applier.apply_dialplan(force=True)
        await world.ami.action({"Action": "DBPut", "Family": "controlplane", "Key": "admission",
                                "Val": world.agi_address})
