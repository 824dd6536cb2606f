"""The held-out invoice scenario end to end (issue 15, Must show 1 and 2): a Flat profile of
$99/mo with 5 extensions, 2 DIDs and 500 minutes included (overage $20/extension, $4/DID,
$0.025/min); a tenant with 7 extensions, 3 DIDs (one added mid-period, present 16 of the
period's 31 days) and 620 billable minutes: real calls through Asterisk (a SIPp carrier answers
them) plus synthetic call records for the rest; a jurisdiction at 8.5 %. The invoice job (the
daemon's own, ``terms.last_cycles`` through the profiles capability) makes the invoice; its lines,
subtotal, tax and total are asserted to the micro-unit against values computed here from the rules
written in docs/invoices.md, and against the issue's figures (99.00 + 40.00 + 2.06 + 3.00 =
144.06; tax 12.25; total 156.31).

Everything goes through the daemon's routes and services except the test's clock: the tenant's
activation day, its profile assignment, the units' arrival times and the real calls' usage counter
are moved to the period the test chose (a 31-day period holding "now", so the real calls fall in
it), the way the synthetic records stand in for weeks of traffic.
"""

from __future__ import annotations

import asyncio
import calendar
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest
from account_support import activate_and_fund, session_requester
from harness import Beside, calls_config, daemon_beside, free_port
from inventory_support import buy_did
from invoice_support import calls as synthetic_calls
from tenants_e2e import uas_scenario
from test_limits import Uac, uas, wait_for

from cdr_ingest.cycles import period_at, period_key
from controlplane.config import AccountConfig, HttpConfig
from controlplane.invoices.http import invoice_services
from controlplane.tenants.http import numbering_services, tenant_services
from controlplane.tenants.models import ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate, TenantStatus

pytestmark = [pytest.mark.e2e]
LOCAL = "5015550100"
SERVICE_TOKEN = "service-token-invoice-scenario"
PLATFORM_TOKEN = "platform-token-invoice-scenario"
REAL_CALLS = 3
BILLABLE_S = 620 * 60


MARGIN = timedelta(minutes=5)  # the world is made (real calls included) within it


def the_period(now: datetime) -> tuple[datetime, datetime] | None:
    """A 31-day period holding [now, now + MARGIN] for some anchor day (the first that gives one),
    or None: only in the minutes before the last day of a 30-day month (or February's) is there
    none. scenario_tenant anchors the tenant on the period's end day."""
    for anchor in range(1, 32):
        found = period_at(now, "UTC", anchor)
        if (found.end - found.start).days == 31 and now + MARGIN < found.end:
            return found.start, found.end
    return None


def test_a_31_day_period_is_found_but_in_the_minutes_before_a_short_months_last_day() -> None:
    """The test's clock, checked over two years (one leap): every period it picks lasts 31 days,
    holds the next minutes, and is the tenant's own under the anchor scenario_tenant gives it."""
    missing: list[datetime] = []
    day = datetime(2027, 1, 1, tzinfo=UTC)
    while day.year < 2029:
        for at in (day, day + timedelta(hours=12), day + timedelta(hours=23, minutes=54),
                   day + timedelta(hours=23, minutes=56), day + timedelta(hours=23, minutes=59)):
            period = the_period(at)
            if period is None:
                missing.append(at)
                continue
            start, end = period
            assert (end - start).days == 31 and start <= at and at + MARGIN < end, (at, period)
            found = period_at(at, "UTC", end.day)
            assert (found.start, found.end) == period, (at, found)
        day += timedelta(days=1)
    tomorrow_is_short_months_last = [at for at in missing if (at + timedelta(days=1)).day == calendar.monthrange(
        at.year, at.month)[1] and at.hour == 23 and at.minute > 55]
    assert missing == tomorrow_is_short_months_last and len(missing) == 2 * 2 * 5, missing


async def scenario_period() -> tuple[datetime, datetime]:
    """The test's period: a 31-day one holding the next few minutes, waited for when there is none."""
    while (period := the_period(datetime.now(UTC))) is None:
        await asyncio.sleep(15)
    return period


def cents(value: Decimal) -> int:
    """docs/invoices.md: every line and the tax rounded half-up to the cent; micro-units."""
    return int(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) * 1_000_000)


@dataclass
class World:
    pool: asyncpg.Pool
    app: Any
    base: str
    partner: str
    tenant: str
    period: tuple[datetime, datetime]

    async def rpc(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {SERVICE_TOKEN}", "X-Partner-Id": self.partner}
        async with aiohttp.ClientSession() as http, http.request(method, self.base + path, json=json,
                                                                 headers=headers) as response:
            return response.status, await response.json(content_type=None)


Rpc = Callable[[str, str, Any], Awaitable[tuple[int, Any]]]


async def scenario_tenant(beside: Beside, pool: asyncpg.Pool, partner: str, rpc: Rpc,
                          period: tuple[datetime, datetime], *, sip_prefix: str, first_did: int) -> str:
    """The scenario's tenant and its usage in ``period`` (shared with test_invoice_paid_e2e.py):
    the Flat 99 profile as the partner's default, 7 extensions, 3 DIDs (the third from day 16),
    the 8.5 % jurisdiction, REAL_CALLS real calls through Asterisk and synthetic records for the
    rest of BILLABLE_S, the tenant's history moved into the period (the test's clock)."""
    config, app = beside.config, beside.app
    tenants, numbering = app[tenant_services], app[numbering_services]
    status, profile = await rpc("POST", "/v1/billing-profiles", {
        "name": "Flat 99", "model": "FLAT", "base_fee_micros": 99_000_000, "included_extensions": 5,
        "included_dids": 2, "included_minutes": 500, "extension_micros": 20_000_000,
        "did_local_micros": 4_000_000, "did_toll_free_micros": 4_000_000, "per_minute_micros": 25_000})
    assert status == 201, profile
    status, body = await rpc("PUT", "/v1/tenant-defaults", {"billing_profile_id": profile["id"]})
    assert status == 200, body
    tenant = (await tenants.create_tenant(partner, TenantCreate(
        name="Dental Co", billing_email="ap@dental.example", sip_prefix=sip_prefix, status=TenantStatus.ACTIVE))).id
    exts = [await numbering.create_extension(partner, tenant, ExtensionCreate(
        number=str(101 + i), display_name=f"Desk {i}")) for i in range(7)]
    status, jurisdiction = await rpc("POST", "/v1/tax-jurisdictions", {
        "name": "Pulaski County", "code": "US-AR-Pulaski", "rate": "8.5"})
    assert status == 201, jurisdiction
    status, body = await rpc("PUT", f"/v1/tenants/{tenant}/tax-jurisdiction", {"jurisdiction_id": jurisdiction["id"]})
    assert status == 200, body
    dids = [await buy_did(pool, partner, f"+1501555{first_did + i}", tenant_id=tenant, numbering=numbering)
            for i in range(3)]
    await tenants.applier.apply_dialplan(force=True)
    beside.procs.append(uas(config.carrier.port, uas_scenario()))
    for _ in range(REAL_CALLS):
        result = await asyncio.to_thread(Uac(config.asterisk.sip_port, exts[0].sip_username,
                                             exts[0].secrets.sip_password, LOCAL, 1.5).run)
        assert result.code == 200, result

    async def recorded() -> list[asyncpg.Record]:
        rows = await pool.fetch("SELECT billable_s, call_class, started_at FROM call_records"
                                " WHERE tenant_id = $1", tenant)
        return rows if len(rows) == REAL_CALLS else []
    real = await wait_for(recorded, 30, "the real calls' records")
    start, end = period
    assert all(r["call_class"] == "local" and start <= r["started_at"] < end and r["billable_s"] > 0
               for r in real), real
    # the test's clock: weeks of traffic and the tenant's history placed in the period
    rest = BILLABLE_S - sum(r["billable_s"] for r in real)
    async with pool.acquire() as conn, conn.transaction():
        # the real calls were counted in the period of the tenant as created today: moved into the
        # test's period with the rest of its history (one row: they all fell in one period)
        key = period_key(start, await conn.fetchval("SELECT timezone FROM tenants WHERE id = $1", tenant))
        moved = await conn.execute("UPDATE tenant_usage SET cycle_start = $2 WHERE tenant_id = $1", tenant, key)
        assert moved == "UPDATE 1", moved
        await synthetic_calls(conn, partner, tenant, start + timedelta(days=1),
                              [3600] * (rest // 3600) + ([rest % 3600] if rest % 3600 else []), period=key)
        await conn.execute("UPDATE tenants SET created_at = $2 WHERE id = $1", tenant, start)
        await conn.execute("UPDATE tenant_profile_assignments SET effective_from = $2 WHERE tenant_id = $1",
                           tenant, start)
        await conn.execute("UPDATE unit_history SET started_at = $2 WHERE tenant_id = $1", tenant, start)
        late = start + timedelta(days=15, hours=10)  # the third DID: days 16..31 of 31
        await conn.execute("UPDATE unit_history SET started_at = $2 WHERE unit_id = $1", dids[2], late)
    if end.day != start.day:  # the anniversary (a short month's last day) would end a day early
        status, body = await rpc("PUT", f"/v1/tenants/{tenant}/limits", {"billing_anchor_day": end.day})
        assert status == 200, body
    return str(tenant)


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, database_dsn: str, pool: asyncpg.Pool
                ) -> AsyncIterator[World]:
    config = calls_config(
        tmp_path_factory.mktemp("invoice-scenario"), instance=f"invsc{os.getpid()}", dsn=database_dsn,
        http=HttpConfig(port=free_port(), service_token=SERVICE_TOKEN, platform_token=PLATFORM_TOKEN),
        account=AccountConfig(unit_fee_interval_s=3600.0, trial_expiry_interval_s=3600.0))
    async with daemon_beside(config, database_dsn) as beside:
        app, base = beside.app, f"http://127.0.0.1:{config.http.port}"
        tenants = app[tenant_services]
        partner = (await tenants.create_partner(PartnerCreate(name="Acme Voice", tier=PartnerTier.BUSINESS))).id
        async with aiohttp.ClientSession() as http:
            await activate_and_fund(session_requester(http, base), partner, platform_token=PLATFORM_TOKEN,
                                    micros=100_000_000)
        w = World(pool, app, base, partner, "", await scenario_period())
        w.tenant = await scenario_tenant(beside, pool, partner, w.rpc, w.period, sip_prefix="invsc", first_did=7100)
        yield w


async def test_the_scenario_invoice_to_the_micro_unit(world: World) -> None:
    w = world
    start, end = w.period
    services = w.app[invoice_services]
    first = await services.run_job(end + timedelta(minutes=5))
    again = await services.run_job(end + timedelta(minutes=6))
    assert first.errors == [] and again.errors == []
    rows = await w.pool.fetch("SELECT id FROM tenant_invoices WHERE tenant_id = $1", w.tenant)
    assert len(rows) == 1, "one invoice for the tenant and period, however often the job runs"
    status, invoice = await w.rpc("GET", f"/v1/invoices/{rows[0]['id']}")
    assert status == 200, invoice

    # docs/invoices.md, recomputed: base fee; units above the included ones, by unit-days over the
    # period's days; minutes above the included ones at the per-minute rate; tax on the subtotal.
    days = (end - start).days
    assert days == 31
    extensions = cents(Decimal(20) * (7 - 5) * days / days)
    did = cents(Decimal(4) * 16 / days)  # 2 included DIDs all period, the third 16 days
    minutes = cents(Decimal("0.025") * (620 - 500))
    subtotal = 99_000_000 + extensions + did + minutes
    tax = cents(Decimal(subtotal) / 1_000_000 * Decimal("8.5") / 100)
    assert [(line["kind"], line["amount_micros"]) for line in invoice["lines"]] == [
        ("base_fee", 99_000_000), ("extensions", extensions), ("dids_local", did), ("minutes_included", 0),
        ("minutes_local", minutes)]
    assert [line["quantity"] for line in invoice["lines"]][-2:] == ["500", "120"]
    assert (invoice["subtotal_micros"], invoice["tax_micros"], invoice["total_micros"]) == (
        subtotal, tax, subtotal + tax)
    # the fixed figures (a 31-day period, the third DID present 16 days)
    assert (extensions, did, minutes) == (40_000_000, 2_060_000, 3_000_000)
    assert (invoice["subtotal_micros"], invoice["tax_micros"], invoice["total_micros"]) == (
        144_060_000, 12_250_000, 156_310_000)
    assert (invoice["status"], invoice["number"], invoice["tax"]) == (
        "SENT", "INV-000001", {"name": "Pulaski County", "rate": "8.5"})
    assert (datetime.fromisoformat(invoice["period_start"]), datetime.fromisoformat(invoice["period_end"])) == (
        start, end)
    events = await w.pool.fetch("SELECT id FROM events WHERE type = 'invoice.created' AND tenant_id = $1", w.tenant)
    assert len(events) == 1
