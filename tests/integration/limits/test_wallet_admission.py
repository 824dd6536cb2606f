"""Admission with the partner's account against a real PostgreSQL (issue 14): the balance read once
and then kept by the wallet's NOTIFY (a real LISTEN), the wallet held like a spend cap across a
restart, the trial's refused classes, a suspended partner; and no query on the hot path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from agi_client import agi_admit
from wallet_support import LONG_AGO

from cdr_ingest.classify import CallClass, Direction
from cdr_ingest.pricing import partner_rate
from cdr_ingest.rating import price
from cdr_ingest.tiers import Tier
from controlplane.account import store as account_store
from controlplane.profiles.models import AssignmentBody
from controlplane.calls.recorder import CallRecorder
from controlplane.profiles.services import ProfileServices
from controlplane.limits.agi import AgiServer
from controlplane.limits.engine import Engine
from controlplane.limits.services import LimitServices
from controlplane.signals import PartnerStatusChanged
from controlplane.tenants.applier import Applier
from controlplane.tenants.models import PartnerCreate, PartnerTier, TenantCreate
from controlplane.tenants.services import TenantServices
from controlplane.wallet import store as wallet_store
from controlplane.wallet.follower import parse
from controlplane.wallet.models import Entry, EntryKind
from provisioning.model import PartnerStatus

LOCAL = "+15015550100"


def wholesale_price(seconds: int) -> int:
    rate = partner_rate(Tier.BUSINESS, CallClass.LOCAL, Direction.OUTBOUND, LOCAL[1:], datetime.now(UTC))
    assert rate is not None
    return price(rate, seconds)


async def set_status(pool: asyncpg.Pool, partner_id: str, status: str) -> None:
    """The account store's status write (what activation and trial expiry do), without events."""
    async with pool.acquire() as conn:
        await account_store.set_status(conn, partner_id, PartnerStatus(status), activated_at=LONG_AGO)


class World:
    def __init__(self, pool: asyncpg.Pool, engine: Engine, services: LimitServices, server: AgiServer) -> None:
        self.pool, self.engine, self.services, self.server = pool, engine, services, server
        self.tenants = TenantServices(pool, Applier(pool))
        self.deaf = False  # notices not heard: as a lost LISTEN connection

    async def partner(self, name: str, status: str) -> tuple[str, str]:
        partner = (await self.tenants.create_partner(PartnerCreate(name=name, tier=PartnerTier.BUSINESS))).id
        tenant = (await self.tenants.create_tenant(partner, TenantCreate(name=name, billing_email="a@b.co",
                                                                         sip_prefix=name))).id
        await ProfileServices(self.pool).assign(partner, tenant, AssignmentBody(per_minute_micros=50_000))
        await set_status(self.pool, partner, status)
        return partner, tenant

    async def credit(self, partner: str, amount: int, reference: str) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            posted = await wallet_store.post(conn, Entry(partner, EntryKind.MANUAL_ADJUSTMENT, amount,
                                                         f"adjust:{reference}"))
        return posted.balance_micros

    async def admit(self, tenant: str, number: str, call_id: str) -> dict[str, str]:
        return await agi_admit(self.server.port, tenant, number, call_id)


@pytest.fixture
async def world(pool: asyncpg.Pool) -> AsyncIterator[World]:
    engine = Engine(pool, CallRecorder(pool).billing)
    services = LimitServices(pool, engine)
    server = AgiServer(engine.admit, port=0)
    await server.start()
    listener = await pool.acquire()

    w = World(pool, engine, services, server)

    def notified(_c: object, _p: int, _ch: str, payload: object) -> None:  # what the wallet plugin does
        change = parse(str(payload))
        if change is not None and not w.deaf:
            services.wallet_changed(change)
    await listener.add_listener(wallet_store.CHANNEL, notified)
    try:
        yield w
    finally:
        await listener.remove_listener(wallet_store.CHANNEL, notified)
        await pool.release(listener)
        await server.stop()


async def until(predicate: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_zero_balance_refused_911_admitted_a_credit_admits_by_the_notice(world: World) -> None:
    partner, tenant = await world.partner("zero", "ACTIVE")
    refused = await world.admit(tenant, LOCAL, "z1")
    assert (refused["CP_ADMIT"], refused["CP_REASON"]) == ("21", "wallet_empty")  # 403
    assert (await world.admit(tenant, "911", "z2"))["CP_ADMIT"] == "ok"
    state = world.engine.partners[partner]
    balance = await world.credit(partner, wholesale_price(60), "zero-1")
    await until(lambda: state.balance_micros == balance)  # the NOTIFY, no call asked
    admitted = await world.admit(tenant, LOCAL, "z3")
    assert admitted == {"CP_DIAL_OPTS": "L(59000)", "CP_ADMIT": "ok"}, admitted
    assert state.held_micros == balance and state.available(0.0) == 0
    again = await world.admit(tenant, LOCAL, "z4")
    assert again["CP_REASON"] == "wallet_empty", "the first call holds the whole credit"


async def test_no_query_on_the_hot_path(world: World) -> None:
    partner, tenant = await world.partner("hot", "ACTIVE")
    await world.credit(partner, 10**9, "hot-1")
    assert (await world.admit(tenant, LOCAL, "h0"))["CP_ADMIT"] == "ok"  # loads tenant, partner, rates
    class NoPool:
        def acquire(self) -> None:
            raise AssertionError("a query on the hot path")
    world.engine.billing_ttl = 0.0  # rates always stale: re-read behind the decisions, never in them
    real, world.engine.pool = world.engine.pool, NoPool()  # type: ignore[assignment]
    try:
        for i in range(50):
            assert (await world.engine.admit(tenant, LOCAL, f"h{i + 1}")).admit
    finally:
        world.engine.pool = real


async def test_wallet_holds_survive_a_restart(world: World) -> None:
    partner, tenant = await world.partner("restart", "ACTIVE")
    balance = await world.credit(partner, wholesale_price(120), "restart-1")
    await world.engine.tenant(tenant)
    await until(lambda: world.engine.partners[partner].balance_micros == balance)
    assert (await world.admit(tenant, LOCAL, "r1"))["CP_DIAL_OPTS"] == "L(119000)"
    await world.engine.persist()
    again = Engine(world.pool, CallRecorder(world.pool).billing)
    await again.load_all()
    assert again.partners[partner].held_micros == balance
    assert again.partners[partner].available(0.0) == 0


async def test_trial_classes_and_a_suspended_partner(world: World) -> None:
    partner, tenant = await world.partner("trial", "TRIAL")
    intl = await world.admit(tenant, "+442071234567", "t1")
    assert (intl["CP_ADMIT"], intl["CP_REASON"]) == ("21", "trial_restricted")
    premium = await world.admit(tenant, "+19005550100", "t2")
    assert (premium["CP_ADMIT"], premium["CP_REASON"]) == ("21", "trial_restricted")
    assert (await world.admit(tenant, LOCAL, "t3"))["CP_ADMIT"] == "ok", "a trial draws nothing: no wallet check"
    await set_status(world.pool, partner, "SUSPENDED")
    await world.services.partner_status_changed(PartnerStatusChanged(partner, "TRIAL", "SUSPENDED"))
    assert not world.engine.tenants[tenant].calls_allowed
    refused = await world.admit(tenant, LOCAL, "t4")
    assert (refused["CP_ADMIT"], refused["CP_REASON"]) == ("21", "partner_suspended")
    assert (await world.admit(tenant, "911", "t5"))["CP_ADMIT"] == "ok"
    await set_status(world.pool, partner, "ACTIVE")
    await world.services.partner_status_changed(PartnerStatusChanged(partner, "SUSPENDED", "ACTIVE"))
    # ACTIVE now, with an empty wallet: the wallet rule applies.
    assert (await world.admit(tenant, LOCAL, "t6"))["CP_REASON"] == "wallet_empty"


async def test_a_missed_signal_does_not_refuse_for_ever(world: World) -> None:
    partner, tenant = await world.partner("missed", "ACTIVE")
    assert (await world.admit(tenant, LOCAL, "m1"))["CP_REASON"] == "wallet_empty"
    world.deaf = True  # a credit whose notice this daemon never hears
    await world.credit(partner, 10_000_000, "missed-1")
    await asyncio.sleep(0.3)
    assert world.engine.partners[partner].balance_micros == 0
    await asyncio.sleep(1.0)  # a refusal re-reads the partner at most once a second
    assert (await world.admit(tenant, LOCAL, "m2"))["CP_ADMIT"] == "ok"


async def test_twenty_parallel_first_calls_share_sixty_seconds_of_credit(world: World) -> None:
    """The tenant's first calls: its rates load while they wait, and still only one is admitted."""
    partner, tenant = await world.partner("race", "ACTIVE")
    await world.credit(partner, wholesale_price(60), "race-1")
    answers = await asyncio.gather(*(world.admit(tenant, LOCAL, f"p{i}") for i in range(20)))
    admitted = [a for a in answers if a["CP_ADMIT"] == "ok"]
    assert admitted == [{"CP_DIAL_OPTS": "L(59000)", "CP_ADMIT": "ok"}], answers
    assert {a["CP_REASON"] for a in answers if a["CP_ADMIT"] != "ok"} == {"wallet_empty"}
