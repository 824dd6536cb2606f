"""Tenant isolation with real SIP against a real Asterisk 22 whose PJSIP objects
come from our PostgreSQL (sorcery realtime) and whose dialplan we render."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote

import asyncpg
import pytest
from inventory_support import buy_did
from harness import free_port, unavailable
from tenants_e2e import (CARRIER_TRUNK, TenantAsterisk, answer_scenario, available, call_scenario,
                         register_scenario,
                         sip_invite_status, sipp)

from controlplane.asterisk.ami import AmiClient
from controlplane.tenants.applier import AmiControl, Applier
from controlplane.tenants.models import ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate
from controlplane.tenants.numbering import NumberingServices
from controlplane.tenants.services import TenantServices
from provisioning.names import REALM

pytestmark = [pytest.mark.e2e]


@dataclass
class World:
    asterisk: TenantAsterisk
    applier: Applier
    tenants: TenantServices
    numbering: NumberingServices
    partner: str
    ids: dict[str, str]
    passwords: dict[str, str]


async def provision_world(pool: asyncpg.Pool, asterisk: TenantAsterisk, ami: AmiClient) -> World:
    applier = Applier(pool, dialplan_path=asterisk.dialplan_path, control=AmiControl(ami))
    tenants, numbering = TenantServices(pool, applier), NumberingServices(pool, applier)
    partner = (await tenants.create_partner(PartnerCreate(name="E2E Reseller", tier=PartnerTier.BUSINESS))).id
    ids: dict[str, str] = {}
    passwords: dict[str, str] = {}
    for prefix in ("acme", "beta"):
        t = await tenants.create_tenant(partner, TenantCreate(name=prefix.title(), billing_email="x@y.co",
                                                              sip_prefix=prefix))
        ids[prefix] = t.id
        for number in ("101", "102"):
            creds = await numbering.create_extension(partner, t.id, ExtensionCreate(number=number,
                                                                                    display_name="User"))
            ids[creds.sip_username] = creds.id
            passwords[creds.sip_username] = creds.secrets.sip_password
    for number, owner in (("+15015550101", "acme"), ("+15015550102", "beta")):
        ids[number] = await buy_did(pool, partner, number, tenant_id=ids[owner], extension_id=ids[f"{owner}_101"],
                                    numbering=numbering)
    await applier.apply_dialplan(force=True)
    await AmiControl(ami).command("core set verbose 3")  # full.log of the instance, for debugging
    return World(asterisk, applier, tenants, numbering, partner, ids, passwords)


@asynccontextmanager
async def started_world(pool: asyncpg.Pool, database_dsn: str) -> AsyncIterator[World]:
    """An Asterisk of its own with the world provisioned (test_lifecycle.py's world too)."""
    reason = available()
    if reason:
        unavailable(reason)
    asterisk = TenantAsterisk(database_dsn, extra_pjsip=CARRIER_TRUNK)
    try:
        await asyncio.to_thread(asterisk.start)
        ami = AmiClient("127.0.0.1", asterisk.ami_port, asterisk.ami_user, asterisk.secret)
        await ami.connect(timeout=10)
        try:
            yield await provision_world(pool, asterisk, ami)
        finally:
            await ami.close()
    finally:
        await asyncio.to_thread(asterisk.stop)


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool, database_dsn: str) -> AsyncIterator[World]:
    async with started_world(pool, database_dsn) as w:
        yield w


def run(world: World, scenario: str, service: str, user: str | None = None,
        password: str | None = None) -> subprocess.CompletedProcess[bytes]:
    result = sipp(world.asterisk, scenario, service, user=user, password=password)
    assert isinstance(result, subprocess.CompletedProcess)
    return result


async def registered(pool: asyncpg.Pool, aor: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await pool.fetchval("SELECT count(*) FROM ps_contacts WHERE endpoint = $1", aor):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{aor} never registered")


class Phones:
    """SIPp phones that register and wait to answer one call."""

    def __init__(self, world: World) -> None:
        self.world, self.procs = world, {}  # type: ignore[var-annotated]

    async def start(self, pool: asyncpg.Pool, *names: str, wait_ms: int = 15000) -> None:
        for name in names:
            port = free_port(socket.SOCK_DGRAM)
            done = await asyncio.to_thread(sipp, self.world.asterisk, register_scenario(), name, user=name,
                                           password=self.world.passwords[name], port=port)
            assert done.returncode == 0, f"{name} did not register"
            await registered(pool, name)
            self.procs[name] = sipp(self.world.asterisk, answer_scenario(wait_ms), name, background=True, port=port)

    def answered(self, name: str, timeout: float = 20) -> bool:
        proc = self.procs[name]
        try:
            return proc.wait(timeout) == 0
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def test_extension_registers_with_its_own_credentials(world: World) -> None:
    result = await asyncio.to_thread(run, world, register_scenario(), "acme_101", "acme_101",
                                     world.passwords["acme_101"])
    assert result.returncode == 0, result.stderr.decode()[-1500:]


@pytest.mark.parametrize(("target", "user", "password_of"), [
    ("beta_101", "acme_101", "acme_101"),   # A's username and password, B's endpoint
    ("beta_101", "beta_101", "acme_101"),   # B's username, A's password
    ("beta_102", "acme_102", "acme_102"),
])
async def test_credentials_of_a_cannot_register_as_b(world: World, target: str, user: str, password_of: str) -> None:
    result = await asyncio.to_thread(run, world, register_scenario(), target, user, world.passwords[password_of])
    assert result.returncode != 0


async def test_call_inside_a_tenant_is_answered_and_never_reaches_the_other(world: World,
                                                                            pool: asyncpg.Pool) -> None:
    phones = Phones(world)
    try:
        await phones.start(pool, "acme_101", "beta_101")
        result = await asyncio.to_thread(run, world, call_scenario(auth=True), "101", "acme_102",
                                         world.passwords["acme_102"])
        assert result.returncode == 0, result.stderr.decode()[-1500:]
        assert phones.answered("acme_101")
        assert not phones.answered("beta_101", timeout=1)
    finally:
        phones.stop()


async def test_did_reaches_only_its_tenant(world: World, pool: asyncpg.Pool) -> None:
    phones = Phones(world)
    try:
        await phones.start(pool, "acme_101", "beta_101")
        result = await asyncio.to_thread(run, world, call_scenario(auth=False), "+15015550101")
        assert result.returncode == 0, result.stderr.decode()[-1500:]
        assert phones.answered("acme_101")
        assert not phones.answered("beta_101", timeout=1)
    finally:
        phones.stop()


# Each hostile string and the exact refusal it gets (the same table as the render test's
# model of the dialplan, tests/unit/provisioning/test_render.py): nothing matches, so PJSIP
# answers 404 before a channel exists, or 484 for a proper prefix of an extension or of a
# number shape ("*" of *43, "12" of 1+10 digits).
DIAL_STRINGS = {"beta_101": 404, "beta_102": 404, "beta-internal": 404, "101@beta-internal": 404,
                "101@beta": 404, "beta/101": 404, "PJSIP/beta_101": 404, "101&PJSIP/beta_101": 404,
                "#101": 404, "*101": 404, "101#": 404, "*": 484, "#": 404, "**101": 404, "_X.": 404,
                "_101": 404, "..": 404, "1" * 300: 404, "101" + "0" * 60: 404, "ü101": 404, "101ü": 404,
                "☎": 404, "0x101": 404, "101;context=beta-internal": 404, "${EXTEN}": 404, "s": 404,
                "i": 404, "h": 404, "+15015550102x": 404, "12": 484, "0101": 404, "1010": 404,
                "+1212555*0100": 404, "011*442071234567": 404, "+101": 404}


async def test_no_dial_string_reaches_another_tenant(world: World, pool: asyncpg.Pool) -> None:
    phones = Phones(world)
    try:
        await phones.start(pool, "beta_101", "beta_102", wait_ms=120000)
        codes = {}
        for dial in DIAL_STRINGS:
            encoded = quote(dial, safe="*+&")
            codes[dial] = await asyncio.to_thread(sip_invite_status, world.asterisk.sip_port, "acme_102",
                                                  world.passwords["acme_102"], encoded, REALM)
        assert codes == DIAL_STRINGS
        assert phones.procs["beta_101"].poll() is None and phones.procs["beta_102"].poll() is None, \
            "a beta phone received a call"
    finally:
        phones.stop()


async def test_a_registration_lands_in_postgres_and_is_tenant_scoped(world: World, pool: asyncpg.Pool) -> None:
    phones = Phones(world)
    try:
        await phones.start(pool, "acme_102")
        row = await pool.fetchrow("SELECT * FROM ps_contacts WHERE endpoint = 'acme_102'")
        assert row["id"].replace("^3B", ";").startswith("acme_102;@")
        # Deleting the extension drops its registration in the same transaction.
        await world.numbering.delete_extension(world.partner, world.ids["acme"], world.ids["acme_102"])
        assert await pool.fetchval("SELECT count(*) FROM ps_contacts WHERE endpoint = 'acme_102'") == 0
        result = await asyncio.to_thread(run, world, register_scenario(), "acme_102", "acme_102",
                                         world.passwords["acme_102"])
        assert result.returncode != 0
    finally:
        phones.stop()
