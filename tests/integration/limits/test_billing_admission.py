"""Admission against a tenant's billing profile, on PostgreSQL: the spend cap lets calls inside
the included minutes through (they cost the tenant nothing), and counts a unit added mid-period at
once, through the unit history's NOTIFY and ``signals.tenant_units_changed``."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from controlplane.calls.recorder import CallRecorder
from controlplane.invoices import units
from controlplane.limits import store
from controlplane.limits.engine import Engine
from controlplane.limits.policy import Limits, Reason
from controlplane.limits.services import LimitServices
from controlplane.signals import Signals

LOCAL = "+12125550100"


async def _tenant(pool: asyncpg.Pool, builtin: str, spend_cap: int, extensions: int) -> str:
    """A TRIAL partner (no wallet in the way) with its default profiles; a tenant on ``builtin``."""
    partner, tenant = f"ptr_{secrets.token_hex(6)}", f"ten_{secrets.token_hex(6)}"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO partners (id, name, tier, status) VALUES ($1, 'R', 'BUSINESS', 'TRIAL')",
                           partner)
        await conn.execute("SELECT billing_profiles_create_defaults($1)", partner)
        await conn.execute("INSERT INTO tenant_defaults (partner_id, billing_profile_id) SELECT $1, id"
                           " FROM billing_profiles WHERE partner_id = $1 AND builtin = $2"
                           " ON CONFLICT (partner_id) DO UPDATE SET billing_profile_id = EXCLUDED.billing_profile_id",
                           partner, builtin)
        await conn.execute("INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status)"
                           " VALUES ($1, $2, 'T', $3, 'b@example.com', 'ACTIVE')", tenant, partner,
                           "a" + secrets.token_hex(4))
        await store.put_limits(conn, tenant, Limits(monthly_spend_micros=spend_cap))
    for n in range(extensions):
        await _extension(pool, tenant, n)
    return tenant


async def _extension(pool: asyncpg.Pool, tenant: str, n: int) -> None:
    await pool.execute("INSERT INTO extensions (id, tenant_id, number, display_name, sip_ha1)"
                       " VALUES ($1, $2, $3, 'U', 'x')", f"ext_{secrets.token_hex(6)}", tenant, f"{200 + n}")


@pytest.fixture
async def engine(pool: asyncpg.Pool) -> AsyncIterator[Engine]:
    """The engine, with the limits services on ``tenant_units_changed`` fed by the invoices
    capability's follower of the unit history (what the two plugins wire in the daemon)."""
    engine = Engine(pool, CallRecorder(pool).billing)
    signals = Signals()
    signals.tenant_units_changed.connect(LimitServices(pool, engine).units_changed)
    signals.freeze()
    listening = asyncio.Event()
    follower = asyncio.create_task(units.follow(pool, signals.tenant_units_changed.send, listening_now=listening))
    await asyncio.wait_for(listening.wait(), 10)
    try:
        yield engine
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


async def test_a_call_inside_the_included_minutes_is_admitted_when_the_fees_fill_the_cap(engine: Engine,
                                                                                      pool: asyncpg.Pool) -> None:
    """Flat Rate Starter, cap = its $99 base fee: the period's spend is at the cap before any call,
    but 500 minutes are included, so a local call costs nothing and is admitted (cut at the
    daemon's longest call), holding no money."""
    tenant = await _tenant(pool, "flat", 99_000_000, extensions=3)
    state = await engine.tenant(tenant)
    assert state is not None and state.usage.spend_micros == 99_000_000 == state.limits.monthly_spend_micros
    decision = await engine.admit(tenant, LOCAL, "call-included")
    assert decision.admit, decision
    assert decision.limit_s == engine.max_call_s and decision.hold is not None and decision.hold.micros == 0
    # later calls see the earlier ones' holds: 500 min = 14400 s + 14400 s + 1200 s, then nothing
    second = await engine.admit(tenant, LOCAL, "call-second")
    third = await engine.admit(tenant, LOCAL, "call-third")
    assert (second.limit_s, third.limit_s) == (engine.max_call_s, 500 * 60 - 2 * engine.max_call_s)
    assert second.hold is not None and third.hold is not None and second.hold.micros == third.hold.micros == 0
    refused = await engine.admit(tenant, LOCAL, "call-over")  # the bundle is all held, the cap spent
    assert (refused.admit, refused.reason) == (False, Reason.SPEND)


async def test_an_extension_added_mid_period_enters_the_spend_cap_at_once(engine: Engine, pool: asyncpg.Pool) -> None:
    """Pay-As-You-Go ($15/extension, nothing included), cap = one extension + two minutes: a call
    gets 120 s; a second extension (any path: the trigger sees it) fills the cap, and the next
    call is refused without the tenant being loaded again."""
    tenant = await _tenant(pool, "payg", 15_000_000 + 50_000, extensions=1)
    state = await engine.tenant(tenant)
    assert state is not None and state.usage.spend_micros == 15_000_000
    first = await engine.admit(tenant, LOCAL, "call-1")
    assert first.admit and first.limit_s == 120
    engine.release(state, "call-1")
    await _extension(pool, tenant, 1)
    deadline = time.monotonic() + 10
    while state.usage.spend_micros != 30_000_000:
        assert time.monotonic() < deadline, f"spend still {state.usage.spend_micros}"
        await asyncio.sleep(0.02)
    assert engine.tenants[tenant] is state  # counted in place, not by a reload
    refused = await engine.admit(tenant, LOCAL, "call-2")
    assert (refused.admit, refused.reason) == (False, Reason.SPEND)
    # removing it gives the room back, at once too
    await pool.execute("DELETE FROM extensions WHERE tenant_id = $1 AND number = '201'", tenant)
    while state.usage.spend_micros != 15_000_000:
        assert time.monotonic() < deadline, f"spend still {state.usage.spend_micros}"
        await asyncio.sleep(0.02)
    again = await engine.admit(tenant, LOCAL, "call-3")
    assert again.admit and again.limit_s == 120
