"""Tenant lifecycle in the call path, on a real Asterisk: suspension refuses
outbound with 403 and announces inbound; cancellation drops registrations and
releases DIDs; reactivation restores; an unrouted DID says "not configured";
a restart restores everything from the database."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator

import asyncpg
import pytest
from tenants_e2e import call_scenario, register_scenario, sip_invite_status, sipp
from test_isolation import World, started_world

from controlplane.tenants.models import DidUpdate, TenantStatus, TenantUpdate
from provisioning.names import REALM

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool, database_dsn: str) -> AsyncIterator[World]:
    async with started_world(pool, database_dsn) as w:
        yield w


def register(world: World, name: str, password_of: str | None = None) -> int:
    result = sipp(world.asterisk, register_scenario(), name, user=name,
                  password=world.passwords[password_of or name])
    assert isinstance(result, subprocess.CompletedProcess)
    return result.returncode


def carrier_call_hung_up_by_asterisk(world: World, did: str) -> bool:
    """The carrier calls a DID; True when Asterisk answers, plays, then hangs up itself."""
    result = sipp(world.asterisk, call_scenario(auth=False, expect_bye=True), did)
    assert isinstance(result, subprocess.CompletedProcess)
    return result.returncode == 0


async def set_status(world: World, tenant: str, status: TenantStatus) -> None:
    await world.tenants.update_tenant(world.partner, world.ids[tenant], TenantUpdate(status=status))
    await world.applier.apply_dialplan()


async def test_suspended_tenant_outbound_403_and_inbound_announcement(world: World) -> None:
    await set_status(world, "beta", TenantStatus.SUSPENDED)
    code = await asyncio.to_thread(sip_invite_status, world.asterisk.sip_port, "beta_102",
                                   world.passwords["beta_102"], "101", REALM)
    assert code == 403
    assert "ss-noservice" in world.asterisk.cli("dialplan show cp-suspended")
    assert await asyncio.to_thread(carrier_call_hung_up_by_asterisk, world, "+15015550102")
    # Still able to register (phones stay provisioned), and reactivation restores calls.
    assert await asyncio.to_thread(register, world, "beta_101") == 0
    await set_status(world, "beta", TenantStatus.ACTIVE)
    code = await asyncio.to_thread(sip_invite_status, world.asterisk.sip_port, "beta_102",
                                   world.passwords["beta_102"], "999", REALM)
    assert code in (404, 484)  # a normal "no such number" (484: could be the start of one), not 403


async def test_unrouted_and_unassigned_dids_say_not_configured(world: World) -> None:
    await world.numbering.update_did(world.partner, world.ids["+15015550101"], DidUpdate(extension_id=None))
    await world.applier.apply_dialplan()
    assert await asyncio.to_thread(carrier_call_hung_up_by_asterisk, world, "+15015550101")
    assert await asyncio.to_thread(carrier_call_hung_up_by_asterisk, world, "+15019999999")
    shown = world.asterisk.cli("dialplan show +15019999999@from-carrier")
    assert "cp-not-configured" in shown


async def test_cancel_drops_registrations_releases_dids_and_reactivation_restores(world: World,
                                                                                   pool: asyncpg.Pool) -> None:
    assert await asyncio.to_thread(register, world, "acme_101") == 0
    assert await pool.fetchval("SELECT count(*) FROM ps_contacts WHERE endpoint = 'acme_101'") == 1
    await world.tenants.delete_tenant(world.partner, world.ids["acme"], "Acme")
    await world.applier.apply_dialplan()
    assert await pool.fetchval("SELECT count(*) FROM ps_contacts WHERE endpoint = 'acme_101'") == 0
    assert "acme_101" not in world.asterisk.cli("pjsip show endpoints")
    assert await asyncio.to_thread(register, world, "acme_101") != 0
    did = await world.numbering.get_did(world.partner, world.ids["+15015550101"])
    assert did.status.value == "RELEASED" and did.tenant_id is None
    assert "acme-internal" not in world.asterisk.cli("dialplan show acme-internal").split("There is no")[0] \
        or "There is no existence" in world.asterisk.cli("dialplan show acme-internal")
    await set_status(world, "acme", TenantStatus.ACTIVE)
    assert await asyncio.to_thread(register, world, "acme_101") == 0
    did = await world.numbering.get_did(world.partner, world.ids["+15015550101"])
    assert did.tenant_id == world.ids["acme"]


async def test_restart_restores_and_reconcile_repairs_drift(world: World, pool: asyncpg.Pool) -> None:
    # Drift: a stray object and a missing one.
    await pool.execute("INSERT INTO ps_endpoints (id, tenant_id, context) VALUES ('zzz_999', 'ten_x', 'beta-internal')")
    await pool.execute("DELETE FROM ps_auths WHERE id = 'beta_101'")
    world.asterisk.dialplan_path.write_text("; clobbered\n")
    report = await world.applier.reconcile()
    assert report.deleted["ps_endpoints"] == 1 and report.upserted["ps_auths"] == 1
    assert "beta-internal" in world.asterisk.cli("dialplan show beta-internal")
    assert await asyncio.to_thread(register, world, "beta_101") == 0
