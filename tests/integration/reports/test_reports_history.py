"""The reports over a generated 24-month, 200-tenant history on a real PostgreSQL, over real HTTP.

Every expected figure is computed here from the generator's in-memory events (reports_world),
following docs/reports.md word by word, never from SQL nor with controlplane.reports' own code.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from reports_expected import (COST, UNPAID, active, day, expected_margin, expected_revenue, expected_risk,
                              expected_trends, fee_at, issued_in, lines, mine)
from reports_world import NOW, ZONE, History, generate, load, local_midnight

from controlplane.config import Config
from controlplane.http.app import make_app
from controlplane.plugins import Context
from controlplane.reports.http import report_clock
from controlplane.reports.plugin import PLUGIN as REPORTS
from controlplane.signals import Signals

TOKEN, PLATFORM = "portal-token", "platform-token"


@dataclass
class World:
    client: TestClient[Any, Any]
    pool: asyncpg.Pool
    h: History

    async def get(self, path: str, params: dict[str, str] | None = None, *, platform: bool = False,
                  partner: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {PLATFORM if platform else TOKEN}"}
        if not platform:
            headers["X-Partner-Id"] = partner or self.h.partner_id
        resp = await self.client.get(path, params=params, headers=headers)
        if resp.content_type == "text/csv":
            return resp.status, await resp.text()
        return resp.status, await resp.json(content_type=None)


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool) -> AsyncIterator[World]:
    h = generate()
    async with pool.acquire() as conn, conn.transaction():
        await load(conn, h)
    context = Context(config=Config(), pool=pool, signals=Signals())
    app = make_app(service_token_value=TOKEN, probes=[], plugins=[REPORTS], context=context,
                   platform_token_value=PLATFORM)
    app[report_clock] = lambda: NOW
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield World(client, pool, h)
    finally:
        await client.close()


# --- the tests -----------------------------------------------------------------------------------

PERIODS = [(date(2026, 10, 1), date(2026, 10, 31)), (date(2025, 3, 9), date(2025, 11, 2)),
           (date(2024, 11, 1), date(2026, 11, 20))]


@pytest.mark.parametrize("first,last", PERIODS)
async def test_every_headline_figure_matches_the_events(world: World, first: date, last: date) -> None:
    status, body = await world.get("/v1/reports/revenue", {"from": f"{first}", "to": f"{last}"})
    assert status == 200, body
    expected = expected_revenue(world.h, first, last)
    assert {k: body[k] for k in expected} == expected
    assert body["period"]["timezone"] == ZONE and body["period"]["days"] == (last - first).days + 1
    assert body["revenue_micros"] != 0 and body["collection_rate_percent"] is not None  # the data is not empty


async def test_presets_end_today_in_the_partners_zone(world: World) -> None:
    status, body = await world.get("/v1/reports/revenue", {"period": "90d"})
    assert status == 200, body
    today = day(NOW)
    assert body["period"]["last_day"] == f"{today}" and body["period"]["days"] == 90
    expected = expected_revenue(world.h, today - timedelta(days=89), today)
    assert {k: body[k] for k in expected} == expected


async def test_the_trends_table_matches_the_events(world: World) -> None:
    status, body = await world.get("/v1/reports/trends")
    assert status == 200, body
    assert body["months"] == expected_trends(world.h, date(2026, 11, 1))
    status, body = await world.get("/v1/reports/trends", {"until": "2025-08"})
    assert body["months"] == expected_trends(world.h, date(2025, 8, 1))
    assert sum(m["churned_tenants"] for m in body["months"]) > 0


async def test_margin_matches_the_events(world: World) -> None:
    for first, last in PERIODS:
        status, body = await world.get("/v1/reports/margin", {"from": f"{first}", "to": f"{last}"})
        assert status == 200, body
        expected = expected_margin(world.h, first, last)
        got = {r["tenant_id"]: {k: r[k] for k in ("invoiced_net_micros", "credit_notes_net_micros", "cost_micros",
                                                  "revenue_micros", "margin_micros", "margin_percent")}
               for r in body["tenants"]}
        assert got == expected
        assert body["cost_micros"] == sum(r["cost_micros"] for r in expected.values())
    assert any(r["credit_notes_net_micros"] for r in expected_margin(world.h, *PERIODS[2]).values())


async def test_churn_risk_matches_the_events(world: World) -> None:
    status, body = await world.get("/v1/reports/churn-risk")
    assert status == 200, body
    got = {r["tenant_id"]: {"recent_billable_s": r["recent_billable_s"], "prior_billable_s": r["prior_billable_s"],
                            "overdue_invoices": r["overdue_invoices"], "overdue_micros": r["overdue_micros"],
                            "reasons": [x["code"] for x in r["reasons"]]} for r in body["tenants"]}
    expected = expected_risk(world.h)
    assert got == expected
    codes = {c for r in expected.values() for c in r["reasons"]}
    assert codes == {"minutes_drop", "overdue_invoices"}  # both reasons occur in the history


async def test_usage_breakdown_matches_the_events(world: World) -> None:
    first, last = PERIODS[0]
    status, body = await world.get("/v1/reports/usage", {"from": f"{first}", "to": f"{last}"})
    assert status == 200, body
    h = world.h
    at = local_midnight(last + timedelta(days=1))
    ours = {t.id for t in mine(h, h.tenants)}
    held = [u for u in h.units if u.tenant_id in ours and u.started_at < at and (u.ended_at is None or u.ended_at >= at)]
    issued = issued_in(h, first, last, cancelled=False)
    calls = [c for c in mine(h, h.calls) if first <= day(c.started_at) <= last]
    got = {x["name"]: (x["count"], x["billable_s"], x["revenue_micros"]) for x in body["lines"]}
    expected = {
        "extensions": (sum(u.kind == "extension" for u in held), None, lines(issued, "extensions")),
        "dids_local": (sum(u.kind == "did_local" for u in held), None, lines(issued, "dids_local")),
        "dids_toll_free": (sum(u.kind == "did_toll_free" for u in held), None, lines(issued, "dids_toll_free"))}
    for cls in ("local", "toll_free", "international"):
        s = sum(c.billable_s for c in calls if c.call_class == cls)
        expected[f"minutes_{cls}"] = (s // 60, s, sum(c.retail for c in calls if c.call_class == cls))
    assert got == expected and body["calls"] == len(calls)


async def test_tenants_by_revenue_sorted_with_lifetime_and_last_payment(world: World) -> None:
    first, last = PERIODS[0]
    status, body = await world.get("/v1/reports/tenants", {"from": f"{first}", "to": f"{last}", "sort": "lifetime"})
    assert status == 200, body
    h = world.h
    at = local_midnight(last + timedelta(days=1))
    ours = {i.id: i for i in mine(h, h.invoices)}
    expected = {}
    for t in mine(h, h.tenants):
        if not active(t, at):
            continue
        pays = [p for p in h.payments if p.invoice_id in ours and ours[p.invoice_id].tenant_id == t.id]
        signed = [(p.at, p.amount if p.kind == "payment" else -p.amount) for p in pays]
        expected[t.id] = {"mrr_micros": fee_at(h, t, at),
                          "lifetime_revenue_micros": sum(a for w, a in signed if w < at),
                          "period_revenue_micros": sum(a for w, a in signed if local_midnight(first) <= w < at),
                          "outstanding_micros": sum(i.total - i.paid for i in ours.values()
                                                    if i.tenant_id == t.id and i.status in UNPAID),
                          "last_payment_at": max((p.at for p in pays if p.kind == "payment"), default=None)}
    got = {r["tenant_id"]: {k: r[k] for k in expected[r["tenant_id"]]} for r in body["tenants"]}
    for r in got.values():
        r["last_payment_at"] = None if r["last_payment_at"] is None else datetime.fromisoformat(r["last_payment_at"])
    assert got == expected
    lifetimes = [r["lifetime_revenue_micros"] for r in body["tenants"]]
    assert lifetimes == sorted(lifetimes, reverse=True)
    status, body = await world.get("/v1/reports/tenants", {"sort": "name", "order": "desc"})
    names = [r["name"] for r in body["tenants"]]
    assert names == sorted(names, key=str.lower, reverse=True)


async def test_the_platform_view_across_partners(world: World) -> None:
    status, body = await world.get("/v1/platform/reports/overview", {"period": "30d"}, platform=True)
    assert status == 200, body
    h = world.h
    rows = {r["partner_id"]: r for r in body["partners"]}
    assert set(rows) >= {h.partner_id, h.other_partner_id}
    for pid, tz_day in ((h.partner_id, day), (h.other_partner_id, lambda at: at.date())):
        today = tz_day(NOW)
        first = today - timedelta(days=29)
        costs = -sum(e.amount for e in h.entries if e.partner_id == pid and e.kind in COST
                     and first <= tz_day(e.at) <= today)
        invoices = {i.id for i in h.invoices if i.partner_id == pid}
        got = sum((p.amount if p.kind == "payment" else -p.amount) for p in h.payments
                  if p.invoice_id in invoices and first <= tz_day(p.at) <= today)
        live = [t for t in h.tenants if t.partner_id == pid and active(t, NOW)]
        assert (rows[pid]["wholesale_revenue_micros"], rows[pid]["tenant_revenue_micros"], rows[pid]["mrr_micros"],
                rows[pid]["active_tenants"], rows[pid]["wallet_balance_micros"]) == (
            costs, got, sum(fee_at(h, t, NOW) for t in live), len(live), h.wallet_balances[pid])
    assert [t["partner_id"] for t in body["trials"]] == [h.other_partner_id]
    starter = next(t for t in body["tiers"] if t["tier"] == "STARTER")
    assert starter["wholesale_revenue_micros"] == rows[h.other_partner_id]["wholesale_revenue_micros"]
    # the partner's token does not reach it, the platform token reaches no partner report
    assert (await world.get("/v1/platform/reports/overview"))[0] == 403
    assert (await world.get("/v1/reports/revenue", platform=True))[0] == 403


async def test_exports_stream_the_same_figures_as_csv(world: World) -> None:
    params = {"from": "2026-10-01", "to": "2026-10-31"}
    _, body = await world.get("/v1/reports/margin", params)
    status, text = await world.get("/v1/reports/margin/export", params)
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["tenant_id"], int(r["margin_micros"])) for r in rows] == [
        (r["tenant_id"], r["margin_micros"]) for r in body["tenants"]]
    _, text = await world.get("/v1/reports/revenue/export", params)
    figures = dict(csv.reader(io.StringIO(text)))
    assert int(figures["revenue_micros"]) == expected_revenue(world.h, date(2026, 10, 1), date(2026, 10, 31))[
        "revenue_micros"]
    _, text = await world.get("/v1/reports/trends/export")
    assert len(list(csv.DictReader(io.StringIO(text)))) == 12
    for view in ("usage", "tenants", "churn-risk"):
        status, text = await world.get(f"/v1/reports/{view}/export", params if view != "churn-risk" else None)
        assert status == 200 and text.count("\r\n") >= 2, view
    status, text = await world.get("/v1/platform/reports/overview/export", platform=True)
    assert status == 200 and world.h.other_partner_id in text


async def test_bad_filters_are_422_naming_every_field_and_nothing_is_read(world: World) -> None:
    status, body = await world.get("/v1/reports/revenue", {"period": "2w", "from": "2026-13-01", "bogus": "1"})
    assert status == 422
    assert {e["field"] for e in body["errors"]} == {"bogus"}
    status, body = await world.get("/v1/reports/revenue", {"period": "2w", "from": "2026-13-01"})
    assert status == 422 and {e["field"] for e in body["errors"]} == {"period", "to", "from"}
    status, body = await world.get("/v1/reports/tenants", {"sort": "size", "order": "up", "from": "2026-01-02",
                                                           "to": "2026-01-01"})
    assert status == 422 and {e["field"] for e in body["errors"]} == {"sort", "order", "to"}
    status, body = await world.get("/v1/reports/trends", {"until": "2026-13"})
    assert status == 422 and body["errors"][0]["field"] == "until"
    assert (await world.get("/v1/reports/revenue", partner="ptr_nobody"))[0] == 404


async def test_the_partners_zone_moves_the_days_and_back(world: World) -> None:
    async def put(tz: object) -> tuple[int, Any]:
        resp = await world.client.put("/v1/reports/settings", json={"timezone": tz}, headers={
            "Authorization": f"Bearer {TOKEN}", "X-Partner-Id": world.h.partner_id})
        return resp.status, await resp.json(content_type=None)

    params = {"from": "2026-10-01", "to": "2026-10-31"}
    _, before = await world.get("/v1/reports/margin", params)
    assert (await put("Mars/Olympus"))[0] == 422 and (await put(5))[0] == 422
    status, body = await put("Asia/Tokyo")
    assert status == 200 and body == {"timezone": "Asia/Tokyo", "monthly_reports": True}
    _, tokyo = await world.get("/v1/reports/margin", params)
    assert tokyo["period"]["timezone"] == "Asia/Tokyo" and tokyo["cost_micros"] != before["cost_micros"]
    assert (await put(ZONE))[0] == 200
    _, after = await world.get("/v1/reports/margin", params)
    assert after == before
