"""Billing profiles over real HTTP against a real PostgreSQL: the two defaults of a new
partner, CRUD with every field at fault named, delete refused while tenants are on a
profile, tenant defaults naming the profile new tenants get, a switch waiting for the
tenant's next period, calls priced by the profile in force at their start, and the
marginal charge of calls within the included minutes (0) and beyond them."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from cdr_ingest.callflow import CallSummary, Finished
from controlplane.calls.recorder import CallRecorder
from controlplane.limits.engine import Engine
from controlplane.profiles import store

from calls_api import CallsApi, serve

TOKEN = "profiles-token"


class Api(CallsApi):
    async def tenant(self, pid: str, tz: str = "UTC") -> str:
        status, body = await self.call("POST", "/v1/tenants", partner=pid,
                                       json={"name": f"T {secrets.token_hex(3)}", "billing_email": "b@x.co",
                                             "timezone": tz})
        assert status == 201, body
        return str(body["id"])

    async def profiles(self, pid: str) -> dict[str, dict[str, Any]]:
        status, body = await self.call("GET", "/v1/billing-profiles", partner=pid)
        assert status == 200, body
        return {p["name"]: p for p in body["items"]}


@pytest.fixture(scope="module")
async def api(pool: asyncpg.Pool) -> AsyncIterator[Api]:
    async with serve(pool, TOKEN, Api) as api:
        yield api


def flat_body(**changes: Any) -> dict[str, Any]:
    return {"name": "Small Office", "model": "FLAT", "base_fee_micros": 99_000_000, "included_extensions": 5,
            "included_dids": 2, "included_minutes": 5, "extension_micros": 20_000_000,
            "did_local_micros": 4_000_000, "did_toll_free_micros": 8_000_000, "per_minute_micros": 20_000,
            "min_seconds": 60, "increment_seconds": 60, **changes}


async def test_a_new_partner_gets_the_two_default_profiles(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    profiles = await api.profiles(pid)
    assert set(profiles) == {"Pay-As-You-Go", "Flat Rate Starter"}
    payg, flat = profiles["Pay-As-You-Go"], profiles["Flat Rate Starter"]
    assert (payg["model"], payg["base_fee_micros"], payg["per_minute_micros"], payg["extension_micros"]) == (
        "PAYG", 0, 25_000, 15_000_000)
    assert (flat["model"], flat["base_fee_micros"], flat["included_extensions"], flat["included_dids"],
            flat["included_minutes"], flat["extension_micros"], flat["did_local_micros"]) == (
        "FLAT", 99_000_000, 5, 2, 500, 20_000_000, 4_000_000)
    assert payg["is_default"] and not flat["is_default"] and payg["builtin"] == "payg"
    # made once: the SQL owner of the figures is idempotent (a replay, the migration)
    async with pool.acquire() as conn:
        await store.create_defaults(conn, pid)
    assert len(await api.profiles(pid)) == 2
    # a new tenant is on the default, from its creation
    tid = await api.tenant(pid)
    status, body = await api.call("GET", f"/v1/tenants/{tid}/billing-profile", partner=pid)
    assert status == 200 and body["profile_id"] == payg["id"] and body["next_profile_id"] is None, body


async def test_crud_names_every_field_at_fault_and_refuses_deleting_a_profile_in_use(api: Api) -> None:
    pid, other = await api.partner(), await api.partner()
    status, body = await api.call("POST", "/v1/billing-profiles", partner=pid, json=flat_body(
        base_fee_micros=-1, model="MONTHLY", increment_seconds=0, surprise=1))
    assert status == 422, body
    assert {e["field"] for e in body["errors"]} == {"base_fee_micros", "model", "increment_seconds", "surprise"}
    status, body = await api.call("POST", "/v1/billing-profiles", partner=pid, json=flat_body(
        trial_days=30, suspend_after_days=3, overdue_after_days=7))
    assert status == 422 and {e["field"] for e in body["errors"]} == {"then_profile_id", "suspend_after_days"}
    assert len(await api.profiles(pid)) == 2  # nothing changed
    status, created = await api.call("POST", "/v1/billing-profiles", partner=pid, json=flat_body())
    assert status == 201 and created["included_minutes"] == 5 and created["tenants"] == 0, created
    status, body = await api.call("POST", "/v1/billing-profiles", partner=pid, json=flat_body(name="small office"))
    assert status == 409 and body["field"] == "name"
    pf = f"/v1/billing-profiles/{created['id']}"
    status, body = await api.call("PUT", pf, partner=pid, json=flat_body(base_fee_micros=89_000_000))
    assert status == 200 and body["base_fee_micros"] == 89_000_000 and body["updated_at"] >= created["updated_at"]
    assert (await api.call("GET", pf, partner=other))[0] == 404  # another partner's
    assert (await api.call("PUT", pf, partner=other, json=flat_body()))[0] == 404
    # a trial that ends on it: it cannot go while that trial names it
    status, trial = await api.call("POST", "/v1/billing-profiles", partner=pid, json={
        "name": "Free Trial", "model": "PAYG", "trial_days": 30, "then_profile_id": created["id"]})
    assert status == 201, trial
    status, body = await api.call("DELETE", pf, partner=pid)
    assert status == 409, body
    # a tenant on it (from its next period counts too): refused with the count
    assert (await api.call("DELETE", f"/v1/billing-profiles/{trial['id']}", partner=pid))[0] == 204
    tid = await api.tenant(pid)
    status, body = await api.call("PUT", f"/v1/tenants/{tid}/billing-profile", partner=pid,
                                  json={"profile_id": created["id"]})
    assert status == 200 and body["next_profile_id"] == created["id"], body
    status, body = await api.call("DELETE", pf, partner=pid)
    assert status == 409 and body["tenants"] == 1, body
    # switched back before it took effect: the waiting switch is gone, the profile can go
    payg = (await api.profiles(pid))["Pay-As-You-Go"]["id"]
    status, body = await api.call("PUT", f"/v1/tenants/{tid}/billing-profile", partner=pid,
                                  json={"profile_id": payg})
    assert status == 200 and body["next_profile_id"] is None and body["profile_id"] == payg, body
    assert (await api.call("DELETE", pf, partner=pid))[0] == 204
    assert (await api.call("GET", pf, partner=pid))[0] == 404
    assert "Small Office" not in await api.profiles(pid)


async def test_tenant_defaults_name_the_profile_new_tenants_get(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    flat = (await api.profiles(pid))["Flat Rate Starter"]
    status, body = await api.call("PUT", "/v1/tenant-defaults", partner=pid,
                                  json={"billing_profile_id": "bpr_nope"})
    assert status == 422 and body["field"] == "billing_profile_id", body
    status, body = await api.call("PUT", "/v1/tenant-defaults", partner=pid,
                                  json={"timezone": "America/New_York", "billing_profile_id": flat["id"]})
    assert status == 200 and body["billing_profile_id"] == flat["id"], body
    assert (await api.profiles(pid))["Flat Rate Starter"]["is_default"]
    tid = await api.tenant(pid, tz="America/New_York")
    status, body = await api.call("GET", f"/v1/tenants/{tid}/billing-profile", partner=pid)
    assert status == 200 and body["profile_id"] == flat["id"] and body["model"] == "FLAT", body
    # Flat: the period runs from the tenant's anniversary (its creation day, in its timezone)
    created = await pool.fetchval("SELECT created_at FROM tenants WHERE id = $1", tid)
    async with pool.acquire() as conn:
        period = await store.period_at(conn, tid, created + timedelta(days=40))
    local = created.astimezone(ZoneInfo("America/New_York"))
    assert period.key.day == local.day or (local.day > 28 and period.key.day >= 28)
    assert period.start <= created + timedelta(days=40) < period.end


async def test_a_switch_applies_at_the_next_period_start(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    profiles = await api.profiles(pid)
    tid = await api.tenant(pid)
    status, body = await api.call("PUT", f"/v1/tenants/{tid}/billing-profile", partner=pid,
                                  json={"profile_id": profiles["Flat Rate Starter"]["id"]})
    assert status == 200, body
    now = datetime.now(UTC)
    first_of_next = (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(day=1)
    assert body["profile_id"] == profiles["Pay-As-You-Go"]["id"]  # PAYG until the month ends
    assert datetime.fromisoformat(body["next_effective_from"]) == first_of_next == datetime.fromisoformat(
        body["period_end"])
    async with pool.acquire() as conn:
        assert (await store.terms_at(conn, tid, now)).name == "Pay-As-You-Go"  # type: ignore[union-attr]
        assert (await store.terms_at(conn, tid, first_of_next)).name == "Flat Rate Starter"  # type: ignore[union-attr]
        # from then on, Flat's anniversary: the tenant's creation day, cut short to reach it
        period = await store.period_at(conn, tid, first_of_next + timedelta(hours=1))
        assert period.start == first_of_next


def summary(tid: str, at: datetime, minutes: int, dialed: str = "15015550123") -> CallSummary:
    answered = at + timedelta(seconds=2)
    return CallSummary(
        call_id=f"{at.timestamp():.0f}.{secrets.token_hex(4)}", tenant_id=tid, inbound=False, trunk_used=True,
        dialed=dialed, caller_num="101", caller_channel="PJSIP/t_101-0001", answered_by="PJSIP/carrier-0002",
        started_at=at, answered_at=answered, ended_at=answered + timedelta(seconds=minutes * 60),
        dial_status="ANSWER", hangup_cause=16)


async def test_calls_are_priced_by_the_profile_as_of_their_start_and_marginally_within_included_minutes(
        api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    tid = await api.tenant(pid)
    status, flat = await api.call("POST", "/v1/billing-profiles", partner=pid, json=flat_body())
    assert status == 201, flat
    now = datetime.now(UTC).replace(microsecond=0)
    switch = now.replace(hour=0, minute=0, second=0)  # switches take effect at a period start (a midnight)
    # The tenant was on PAYG since yesterday and is on the Flat profile (5 minutes included) since today.
    await pool.execute("UPDATE tenant_profile_assignments SET effective_from = $2 WHERE tenant_id = $1",
                       tid, now - timedelta(days=1))
    await pool.execute("INSERT INTO tenant_profile_assignments (tenant_id, effective_from, profile_id)"
                       " VALUES ($1, $2, $3)", tid, switch, flat["id"])
    api.recorder.forget(tid)
    calls = [summary(tid, switch - timedelta(minutes=30), 3),  # PAYG: 3 x 0.025
             summary(tid, switch + timedelta(minutes=1), 2),  # 2 of 5 included: 0
             summary(tid, switch + timedelta(minutes=2), 2),  # 4 of 5: 0
             summary(tid, switch + timedelta(minutes=3), 2),  # 1 left: 1 minute over at 0.020
             summary(tid, switch + timedelta(minutes=4), 1, dialed="011447911123456")]  # international: never included
    await api.recorder.write_batch([Finished(s) for s in calls[:4]])
    rows = {r["linkedid"]: r for r in await pool.fetch("SELECT * FROM call_records WHERE tenant_id = $1", tid)}
    retail = [rows[s.call_id]["retail_micros"] for s in calls[:4]]
    assert retail == [75_000, 0, 0, 20_000], retail
    assert "included_minutes" in rows[calls[1].call_id]["notes"]
    # a fresh recorder (a restart) reads the period's usage once: the bundle stays spent
    fresh = CallRecorder(pool)
    after_restart = summary(tid, switch + timedelta(minutes=5), 1)
    await fresh.handle(Finished(after_restart))
    await fresh.handle(Finished(calls[4]))
    rows = {r["linkedid"]: r for r in await pool.fetch("SELECT * FROM call_records WHERE tenant_id = $1", tid)}
    assert rows[after_restart.call_id]["retail_micros"] == 20_000
    intl = rows[calls[4].call_id]
    assert intl["call_class"] == "international" and intl["retail_micros"] == 20_000  # the profile's rate
    assert "included_minutes" not in intl["notes"]
    # the usage of the period: what the cap and the invoice read
    async with pool.acquire() as conn:
        period = await store.period_at(conn, tid, now)
    used = await pool.fetchval("SELECT sum(billable_s) FROM tenant_usage WHERE tenant_id = $1 AND cycle_start = $2"
                               " AND call_class = 'local'", tid, period.key)
    assert used == 7 * 60


async def test_a_trial_profile_moves_the_tenant_to_its_next_profile_at_the_trial_end(
        api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    flat = (await api.profiles(pid))["Flat Rate Starter"]
    status, trial = await api.call("POST", "/v1/billing-profiles", partner=pid, json={
        "name": "Free Trial", "model": "PAYG", "trial_days": 30, "then_profile_id": flat["id"]})
    assert status == 201, trial
    assert (await api.call("PUT", "/v1/tenant-defaults", partner=pid,
                           json={"billing_profile_id": trial["id"]}))[0] == 200
    tid = await api.tenant(pid, tz="America/Chicago")
    status, body = await api.call("GET", f"/v1/tenants/{tid}/billing-profile", partner=pid)
    assert status == 200 and body["profile_id"] == trial["id"] and body["next_profile_id"] == flat["id"], body
    created = await pool.fetchval("SELECT created_at FROM tenants WHERE id = $1", tid)
    tz = ZoneInfo("America/Chicago")
    local_day = created.astimezone(tz).date() + timedelta(days=30)
    ends = datetime(local_day.year, local_day.month, local_day.day, tzinfo=tz)
    assert datetime.fromisoformat(body["next_effective_from"]) == ends  # the tenant's local midnight
    async with pool.acquire() as conn:
        assert (await store.terms_at(conn, tid, ends)).profile_id == flat["id"]  # type: ignore[union-attr]
        assert (await store.period_at(conn, tid, ends - timedelta(seconds=1))).end == ends


async def test_the_spend_cap_counts_the_base_and_unit_fees_with_the_calls(api: Api, pool: asyncpg.Pool) -> None:
    """Flat Rate Starter with 7 extensions and 3 local DIDs: 99 + 2 x 20 + 1 x 4 counted in the
    period's spend before any call; then each call's marginal retail on top."""
    pid = await api.partner()
    flat = (await api.profiles(pid))["Flat Rate Starter"]
    assert (await api.call("PUT", "/v1/tenant-defaults", partner=pid,
                           json={"billing_profile_id": flat["id"]}))[0] == 200
    tid = await api.tenant(pid)
    for n in range(7):
        await pool.execute("INSERT INTO extensions (id, tenant_id, number, display_name, sip_ha1)"
                           " VALUES ($1, $2, $3, 'U', 'x')", f"ext_{secrets.token_hex(6)}", tid, f"10{n}")
    for n in range(3):
        await pool.execute("INSERT INTO dids (id, partner_id, number, tenant_id, status) VALUES ($1, $2, $3, $4,"
                           " 'ACTIVE')", f"did_{secrets.token_hex(6)}", pid, f"+1501555{secrets.randbelow(10**4):04d}",
                           tid)
    async with pool.acquire() as conn:
        assert await store.fees_at(conn, tid, datetime.now(UTC)) == 99_000_000 + 40_000_000 + 4_000_000
    engine = Engine(pool, CallRecorder(pool).billing)
    state = await engine.tenant(tid)
    assert state is not None and state.usage.spend_micros == 143_000_000
    async with pool.acquire() as conn:
        period = await store.period_at(conn, tid, datetime.now(UTC))
    assert (state.cycle_start, state.cycle_end) == (period.start, period.end)
