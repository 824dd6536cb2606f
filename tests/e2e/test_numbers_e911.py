"""Numbers and E911 on a real Asterisk: a bought, assigned, routed DID rings its
extension; 911 reaches the emergency trunk with the caller's registered DID as
caller id; 911 from a tenant with no registered address reaches the relay trunk
and the partner gets ``e911.unregistered_call``. The two trunks are SIPp UASs on
free ports, rendered by e911.trunks into pjsip_extra.conf."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from wallet_support import active_funded
from harness import unavailable
from tenants_e2e import (CARRIER_TRUNK, TenantAsterisk, answer_scenario, available, call_scenario, finished,
                         free_port, register_scenario, sipp)

from controlplane.asterisk.ami import AmiClient
from controlplane.numbers.alerts import record_relay_call
from controlplane.numbers.e911_services import E911Services
from controlplane.numbers.models import E911Address
from controlplane.numbers.services import NumberServices
from controlplane.tenants.applier import AmiControl, Applier
from controlplane.tenants.models import ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate
from controlplane.tenants.numbering import NumberingServices
from controlplane.tenants.services import TenantServices
from e911.trunks import render_trunks

pytestmark = [pytest.mark.e2e]
ADDRESS = E911Address(street="1234 Main St", unit="Floor 2", city="Little Rock", state="AR", zip="72211")


@dataclass
class World:
    asterisk: TenantAsterisk
    passwords: dict[str, str]
    emergency_port: int
    relay_port: int


def _udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)


def trunk_uas(expect_from: str | None) -> str:
    """Answer one INVITE; with ``expect_from``, fail unless the From header carries it."""
    scenario = answer_scenario(30000)
    if expect_from:
        check = (f'  <recv request="INVITE" timeout="30000">\n    <action>\n      <ereg regexp="{expect_from}"'
                 ' search_in="hdr" header="From:" check_it="true" assign_to="1"/>\n    </action>\n  </recv>\n'
                 '  <Reference variables="1"/>\n')
        scenario = scenario.replace('  <recv request="INVITE" timeout="30000"/>\n', check)
    return scenario


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool, database_dsn: str) -> AsyncIterator[World]:
    reason = available()
    if reason:
        unavailable(reason)
    em, relay = _udp_port(), _udp_port()
    asterisk = TenantAsterisk(database_dsn, extra_pjsip=CARRIER_TRUNK + render_trunks("127.0.0.1", em,
                                                                                      "127.0.0.1", relay))
    try:
        await asyncio.to_thread(asterisk.start)
        ami = AmiClient("127.0.0.1", asterisk.ami_port, asterisk.ami_user, asterisk.secret)
        await ami.connect(timeout=10)

        async def on_dial(event: Any) -> None:
            await record_relay_call(pool, dict(event.headers))

        ami.on("DialBegin", on_dial)
        try:
            applier = Applier(pool, dialplan_path=asterisk.dialplan_path, control=AmiControl(ami))
            tenants, ext = TenantServices(pool, applier), NumberingServices(pool, applier)
            numbers = NumberServices(pool, applier)
            partner = (await tenants.create_partner(PartnerCreate(name="E911 Co", tier=PartnerTier.BUSINESS))).id
            await active_funded(pool, partner, 100_000_000)
            await numbers.load_inventory("npa,nxx,first,last,state,city,rate_center\n"
                                         "501,555,100,199,AR,Little Rock,LTLROCK\n")
            passwords, dids = {}, {}
            for prefix, number in (("acme", "+15015550101"), ("beta", "+15015550102")):
                t = await tenants.create_tenant(partner, TenantCreate(name=prefix, billing_email="x@y.co",
                                                                      sip_prefix=prefix))
                creds = await ext.create_extension(partner, t.id, ExtensionCreate(number="101", display_name="U"))
                passwords[creds.sip_username] = creds.secrets.sip_password
                (did,) = (await numbers.purchase(partner, [number])).numbers
                await numbers.assign(partner, did.id, t.id, creds.id)
                dids[prefix] = did.id
            await E911Services(numbers).register(partner, dids["acme"], ADDRESS)
            await applier.apply_dialplan(force=True)
            await AmiControl(ami).command("core set verbose 4")  # the instance's console.log, for debugging
            yield World(asterisk, passwords, em, relay)
        finally:
            await ami.close()
    finally:
        await asyncio.to_thread(asterisk.stop)


def _run(world: World, scenario: str, service: str, user: str | None = None) -> subprocess.CompletedProcess[bytes]:
    result = sipp(world.asterisk, scenario, service, user=user, password=world.passwords.get(user or ""))
    assert isinstance(result, subprocess.CompletedProcess)
    return result


def _background(world: World, scenario: str, port: int) -> subprocess.Popen[bytes]:
    proc = sipp(world.asterisk, scenario, "uas", background=True, port=port)
    assert isinstance(proc, subprocess.Popen)
    return proc


async def test_a_bought_assigned_routed_did_rings_its_extension(world: World, pool: asyncpg.Pool) -> None:
    port = _udp_port()
    reg = await asyncio.to_thread(sipp, world.asterisk, register_scenario(), "acme_101", user="acme_101",
                                  password=world.passwords["acme_101"], port=port)
    assert reg.returncode == 0, reg.stderr[-1500:]
    phone = sipp(world.asterisk, answer_scenario(20000), "acme_101", background=True, port=port)
    assert isinstance(phone, subprocess.Popen)
    try:
        call = await asyncio.to_thread(_run, world, call_scenario(auth=False), "+15015550101")
        assert call.returncode == 0, call.stderr.decode()[-1500:]
        assert await asyncio.to_thread(finished, phone, 20) == 0
    finally:
        if phone.poll() is None:
            phone.kill()
            phone.wait()


async def test_911_from_a_registered_did_reaches_the_emergency_trunk_with_that_did(world: World) -> None:
    trunk = _background(world, trunk_uas(r"\+15015550101"), world.emergency_port)
    time.sleep(0.3)
    call = await asyncio.to_thread(_run, world, call_scenario(auth=True), "911", "acme_101")
    assert call.returncode == 0, call.stderr.decode()[-1500:]
    assert await asyncio.to_thread(finished, trunk, 20) == 0, "the emergency trunk did not get the call as +15015550101"


async def test_911_without_a_registered_address_reaches_the_relay_and_alerts(world: World,
                                                                            pool: asyncpg.Pool) -> None:
    relay = _background(world, trunk_uas(None), world.relay_port)
    time.sleep(0.3)
    call = await asyncio.to_thread(_run, world, call_scenario(auth=True), "911", "beta_101")
    assert call.returncode == 0, call.stderr.decode()[-1500:]
    assert await asyncio.to_thread(finished, relay, 20) == 0, "the relay trunk did not get the call"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if await pool.fetchval("SELECT count(*) FROM events WHERE type = 'e911.unregistered_call'"):
            break
        await asyncio.sleep(0.1)
    body = await pool.fetchval("SELECT convert_from(body, 'UTF8') FROM events WHERE type = 'e911.unregistered_call'")
    assert body is not None and '"no_registered_address"' in body and '"beta"' in body
