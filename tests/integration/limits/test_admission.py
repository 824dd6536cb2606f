"""Admission against a real PostgreSQL: the FastAGI server, reservations, count caps, defaults."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
import pytest
from agi_client import agi_admit
from inventory_support import buy_did
from wallet_support import active_funded

from controlplane.profiles.models import AssignmentBody
from controlplane.calls.recorder import CallRecorder
from controlplane.profiles.services import ProfileServices
from controlplane.http.problems import Problem
from controlplane.limits.agi import AgiServer
from controlplane.limits.engine import Engine
from controlplane.limits.models import LimitsBody
from controlplane.limits.services import LimitServices
from controlplane.tenants.applier import Applier
from controlplane.tenants.models import ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate
from controlplane.tenants.numbering import NumberingServices
from controlplane.tenants.services import TenantServices



async def _world(pool: asyncpg.Pool, prefix: str) -> tuple[str, str, LimitServices, AgiServer, Engine]:
    tenants = TenantServices(pool, Applier(pool))
    partner = (await tenants.create_partner(PartnerCreate(name="P", tier=PartnerTier.BUSINESS))).id
    # Out of TRIAL (which refuses international) with a wallet that no test here exhausts.
    await active_funded(pool, partner, 10**9)
    tenant = (await tenants.create_tenant(partner, TenantCreate(name=prefix, billing_email="a@b.co",
                                                                sip_prefix=prefix))).id
    await ProfileServices(pool).assign(partner, tenant, AssignmentBody(
        per_minute_micros=50_000, min_seconds=60, increment_seconds=6))
    engine = Engine(pool, CallRecorder(pool).billing)
    server = AgiServer(engine.admit, port=0)
    await server.start()
    return partner, tenant, LimitServices(pool, engine), server, engine


async def test_twenty_parallel_calls_share_sixty_seconds(pool: asyncpg.Pool) -> None:
    partner, tenant, services, server, engine = await _world(pool, "race")
    try:
        await services.put(partner, tenant, LimitsBody(monthly_minutes=1))
        answers = await asyncio.gather(*(agi_admit(server.port, tenant, "+18005550199", f"call{i}")
                                         for i in range(20)))
        admitted = [a for a in answers if a["CP_ADMIT"] == "ok"]
        assert len(admitted) == 1 and admitted[0]["CP_DIAL_OPTS"] == "L(59000)"
        assert {a["CP_ADMIT"] for a in answers if a not in admitted} == {"21"}  # 403
        assert {a["CP_REASON"] for a in answers if a not in admitted} == {"monthly_minutes"}
        usage = await services.usage(partner, tenant)
        assert usage.reserved_seconds == 60
        # Reservations survive a restart (persisted behind the decisions).
        await engine.persist()
        again = Engine(pool, CallRecorder(pool).billing)
        await again.load_all()
        assert again.tenants[tenant].ledger.reserved()[0] == 60
        # Released when the call ends: the next call is admitted.
        engine.release(engine.tenants[tenant], next(iter(engine.tenants[tenant].ledger.holds)))
        assert (await agi_admit(server.port, tenant, "+18005550199", "next"))["CP_ADMIT"] == "ok"
    finally:
        await server.stop()


async def test_concurrent_cap_of_three_and_emergency(pool: asyncpg.Pool) -> None:
    partner, tenant, services, server, engine = await _world(pool, "conc")
    try:
        await services.put(partner, tenant, LimitsBody(max_outbound_calls=3))
        answers = [await agi_admit(server.port, tenant, "+15015550100", f"c{i}") for i in range(4)]
        assert [a["CP_ADMIT"] for a in answers] == ["ok", "ok", "ok", "17"]  # 486 Busy Here
        # No minutes/spend cap: the only cut-off is the wallet's hold (issue 14), which a funded
        # wallet leaves at the platform's longest call (limits.max_call_seconds, 14400 s).
        assert answers[0]["CP_DIAL_OPTS"] == "L(14399000)"
        engine.release(engine.tenants[tenant], "c1")
        assert (await agi_admit(server.port, tenant, "+15015550100", "c5"))["CP_ADMIT"] == "ok"
        assert (await services.usage(partner, tenant)).concurrent_outbound.used == 3
        # Even if asked (the dialplan never does), an emergency number is admitted.
        assert (await agi_admit(server.port, tenant, "911", "e1"))["CP_ADMIT"] == "ok"
    finally:
        await server.stop()


async def test_count_caps_defaults_and_reset(pool: asyncpg.Pool) -> None:
    partner, tenant, services, server, _ = await _world(pool, "caps")
    await server.stop()
    numbering = NumberingServices(pool, Applier(pool))
    await services.put(partner, tenant, LimitsBody(max_extensions=1))
    await numbering.create_extension(partner, tenant, ExtensionCreate(number="101", display_name="A"))
    with pytest.raises(Problem) as refused:
        await numbering.create_extension(partner, tenant, ExtensionCreate(number="102", display_name="B"))
    assert refused.value.status == 409 and refused.value.extra["limit"] == "max_extensions"
    await services.put(partner, tenant, LimitsBody(max_extensions=0))  # below usage: allowed
    assert (await services.get(partner, tenant)).max_extensions == 0
    # Defaults pre-fill new tenants; reset restores them.
    await services.put_defaults(partner, LimitsBody(monthly_minutes=5000, max_dids=10, auto_suspend=True))
    tenants = TenantServices(pool, Applier(pool))
    fresh = (await tenants.create_tenant(partner, TenantCreate(name="New", billing_email="a@b.co"))).id
    got = await services.get(partner, fresh)
    assert (got.monthly_minutes, got.max_dids, got.auto_suspend) == (5000, 10, True)
    reset = await services.reset(partner, tenant)
    assert (reset.monthly_minutes, reset.max_extensions) == (5000, None)


async def test_count_caps_announce_their_threshold_once(pool: asyncpg.Pool) -> None:
    partner, tenant, services, server, _ = await _world(pool, "thr")
    await server.stop()
    numbering = NumberingServices(pool, Applier(pool))
    await services.put(partner, tenant, LimitsBody(max_extensions=5, max_dids=2, alert_threshold_pct=80))

    async def announced(cap: str) -> list[dict[str, object]]:
        rows = await pool.fetch("SELECT body FROM events WHERE type = 'usage.threshold_reached'"
                                " AND tenant_id = $1 ORDER BY seq", tenant)
        return [d for d in (msgspec.json.decode(r["body"])["data"] for r in rows) if d["cap"] == cap]

    for n in range(1, 6):  # 80 % of 5 is reached by the 4th
        await numbering.create_extension(partner, tenant, ExtensionCreate(number=f"10{n}", display_name="U"))
        assert len(await announced("max_extensions")) == (n >= 4), n
    (event,) = await announced("max_extensions")
    assert (event["used"], event["limit"], event["unit"]) == (4, 5, "count")
    # DIDs: the first of two is 50 %, the second 100 %; one announcement.
    for number in ("+15015550101", "+15015550102"):
        await buy_did(pool, partner, number, tenant_id=tenant, numbering=numbering)
    (event,) = await announced("max_dids")
    assert (event["used"], event["limit"]) == (2, 2)
    assert await pool.fetchval("SELECT status FROM tenants WHERE id = $1", tenant) == "TRIAL"  # never suspends


async def test_a_tripped_count_cap_is_announced_and_suspends_with_auto_suspend(pool: asyncpg.Pool) -> None:
    partner, tenant, services, server, _ = await _world(pool, "trip")
    await server.stop()
    tenants = TenantServices(pool, Applier(pool))

    async def suspend(partner_id: str, tenant_id: str, cause: str) -> None:
        await tenants.suspend_for(partner_id, tenant_id, cause)
    services.suspend = suspend
    numbering = NumberingServices(pool, Applier(pool), on_cap_tripped=services.count_cap_tripped)
    await services.put(partner, tenant, LimitsBody(max_extensions=1, auto_suspend=True))
    await numbering.create_extension(partner, tenant, ExtensionCreate(number="101", display_name="A"))
    assert await pool.fetchval("SELECT status FROM tenants WHERE id = $1", tenant) == "TRIAL"
    with pytest.raises(Problem) as refused:
        await numbering.create_extension(partner, tenant, ExtensionCreate(number="102", display_name="B"))
    assert refused.value.status == 409 and refused.value.field == "max_extensions"
    assert await pool.fetchval("SELECT count(*) FROM extensions WHERE tenant_id = $1", tenant) == 1
    rows = await pool.fetch("SELECT type, body FROM events WHERE tenant_id = $1 AND type IN"
                            " ('usage.cap_reached', 'tenant.suspended') ORDER BY seq", tenant)
    assert [r["type"] for r in rows] == ["usage.cap_reached", "tenant.suspended"]
    cap = msgspec.json.decode(rows[0]["body"])["data"]
    assert (cap["cap"], cap["used"], cap["limit"], cap["auto_suspend"]) == ("max_extensions", 1, 1, True)
    assert msgspec.json.decode(rows[1]["body"])["data"]["cause"] == "usage_cap:max_extensions"
    assert await pool.fetchval("SELECT status FROM tenants WHERE id = $1", tenant) == "SUSPENDED"


async def test_admission_rates_the_trunk_number_and_fails_closed_without_a_rate(pool: asyncpg.Pool) -> None:
    """Any dial form of a number is the same E.164 number; a non-number is 484; under a spend
    cap a destination with no wholesale rate (international, no platform deck) is 403 no_rate,
    and without a money or minutes cap it goes on."""
    partner, tenant, services, server, engine = await _world(pool, "norate")
    try:
        await services.put(partner, tenant, LimitsBody(monthly_spend_micros=10**9))
        for dialled in ("2125550100", "+12125550100", "01112125550100"):
            decision = await engine.admit(tenant, dialled, f"n-{dialled}")
            assert (decision.admit, decision.number) == (True, "+12125550100"), dialled
        bad = await agi_admit(server.port, tenant, "+1212555*0100", "bad")
        assert (bad["CP_ADMIT"], bad["CP_REASON"]) == ("28", "not_a_number")  # 484
        intl = await agi_admit(server.port, tenant, "+442071234567", "intl")
        assert (intl["CP_ADMIT"], intl["CP_REASON"]) == ("21", "no_rate")  # 403
        await services.put(partner, tenant, LimitsBody(max_outbound_calls=10))  # no money/minutes cap
        assert (await agi_admit(server.port, tenant, "+442071234567", "intl2"))["CP_ADMIT"] == "ok"
    finally:
        await server.stop()
