"""The calls RPC over real HTTP against a real PostgreSQL: listing and its filters,
cursor pages, one record, CSV export (streamed), billing profiles and retail decks,
usage, the wallet; and ingestion idempotency (a call recorded twice counts once)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from cdr_ingest.callflow import CallSummary, Finished
from cdr_ingest.records import call_record_id
from controlplane.calls.reconcile import reconcile_once
from controlplane.calls.tracker import CallTracker
from calls_api import CallsApi, serve
from wallet_support import make_active

TOKEN = "calls-token"
NOW = datetime.now(UTC).replace(microsecond=0)
# Calls in the last hours, never before the current calendar month (UTC) began.
BASE = max(NOW - timedelta(hours=6), NOW.replace(day=1, hour=0, minute=0, second=0))


class Api(CallsApi):
    async def tenant(self, pid: str, name: str = "Acme") -> str:
        status, body = await self.call("POST", "/v1/tenants", partner=pid,
                                       json={"name": name, "billing_email": "b@x.co"})
        assert status == 201, body
        return str(body["id"])


@pytest.fixture(scope="module")
async def api(pool: asyncpg.Pool) -> AsyncIterator[Api]:
    async with serve(pool, TOKEN, Api) as api:
        yield api


def summary(*, tenant: str, at: datetime, dialed: str = "18005550199", answered_s: float | None = 61.0,
            inbound: bool = False, dial_status: str = "ANSWER", cause: int = 16, linkedid: str | None = None,
            ext: str = "101") -> CallSummary:
    answered = at + timedelta(seconds=2) if answered_s is not None else None
    ended = (answered + timedelta(seconds=answered_s)) if answered is not None else at + timedelta(seconds=5)
    trunk = not inbound and len(dialed) > 6
    return CallSummary(
        call_id=linkedid or f"{at.timestamp():.0f}.{secrets.token_hex(4)}", tenant_id=tenant, inbound=inbound,
        trunk_used=trunk, dialed=dialed, caller_num="+15015550100" if inbound else ext,
        caller_channel="PJSIP/carrier-0001" if inbound else f"PJSIP/t_{ext}-0001",
        answered_by=(f"PJSIP/t_{ext}-0002" if inbound else "PJSIP/carrier-0002") if answered else "",
        started_at=at, answered_at=answered, ended_at=ended,
        dial_status=dial_status if answered is None else "ANSWER", hangup_cause=cause)


async def record(api: Api, s: CallSummary) -> None:
    await api.recorder.handle(Finished(s))


async def put_profile(api: Api, pid: str, tid: str, **fields: Any) -> tuple[int, Any]:
    body = {"per_minute_micros": 50_000, "toll_free_per_minute_micros": 30_000, "min_seconds": 60,
            "increment_seconds": 6, **fields}
    return await api.call("PUT", f"/v1/tenants/{tid}/billing-profile", partner=pid, json=body)


async def all_pages(api: Api, pid: str, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": "10", **({"cursor": cursor} if cursor else {})}
        status, body = await api.call("GET", "/v1/calls", partner=pid, params=query)
        assert status == 200, body
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


# ---------------------------------------------------------------- listing


async def test_list_filters_and_one_record(api: Api, pool: asyncpg.Pool) -> None:
    pid, other = await api.partner(), await api.partner()
    t1, t2 = await api.tenant(pid, "One"), await api.tenant(pid, "Two")
    t_other = await api.tenant(other, "Elsewhere")
    for tid in (t1, t2):
        assert (await put_profile(api, pid, tid))[0] == 200
    calls = [
        summary(tenant=t1, at=BASE + timedelta(minutes=1)),  # outbound toll-free answered
        summary(tenant=t1, at=BASE + timedelta(minutes=2), dialed="+15015550123", answered_s=None,
                dial_status="BUSY", cause=17),  # outbound local busy
        summary(tenant=t1, at=BASE + timedelta(minutes=3), dialed="102"),  # internal
        summary(tenant=t2, at=BASE + timedelta(minutes=4), dialed="+15015550101", inbound=True),
        summary(tenant=t2, at=BASE + timedelta(minutes=5), dialed="+442071838750", answered_s=10.0),
    ]
    for s in calls:
        await record(api, s)
    await record(api, summary(tenant=t_other, at=BASE + timedelta(minutes=1)))

    everything = await all_pages(api, pid)
    assert [c["linkedid"] for c in everything] == [s.call_id for s in reversed(calls)]  # newest first
    assert {c["partner_id"] for c in everything} == {pid}

    async def ids(**params: str) -> list[str]:
        return [c["linkedid"] for c in await all_pages(api, pid, **params)]

    assert await ids(tenant_id=t1) == [calls[2].call_id, calls[1].call_id, calls[0].call_id]
    assert await ids(direction="inbound") == [calls[3].call_id]
    assert await ids(direction="internal") == [calls[2].call_id]
    assert await ids(direction="outbound", tenant_id=t1) == [calls[1].call_id, calls[0].call_id]
    assert await ids(**{"class": "toll_free"}) == [calls[0].call_id]
    assert await ids(**{"class": "international"}) == [calls[4].call_id]
    assert await ids(disposition="BUSY") == [calls[1].call_id]
    assert await ids(disposition="ANSWERED", tenant_id=t2) == [calls[4].call_id, calls[3].call_id]
    window = {"started_from": (BASE + timedelta(minutes=2)).isoformat(),
              "started_before": (BASE + timedelta(minutes=4)).isoformat()}  # [from, before)
    assert await ids(**window) == [calls[2].call_id, calls[1].call_id]
    assert await ids(tenant_id=t_other) == []  # another partner's tenant: nothing leaks

    for params, field in (({"direction": "sideways"}, "direction"), ({"class": "gold"}, "class"),
                          ({"disposition": "MAYBE"}, "disposition"),
                          ({"started_from": "yesterday"}, "started_from"),
                          ({"started_before": "2025-01-01T00:00:00"}, "started_before"),
                          ({"limit": "101"}, "limit"), ({"cursor": "garbage!"}, "cursor")):
        status, body = await api.call("GET", "/v1/calls", partner=pid, params=params)
        assert status == 422 and body["field"] == field, (params, body)

    one = call_record_id(calls[0].call_id)
    status, body = await api.call("GET", f"/v1/calls/{one}", partner=pid)
    assert status == 200 and body["id"] == one and body["call_class"] == "toll_free"
    assert body["billable_s"] == 66 and body["retail_micros"] == 33_000 and body["wholesale_micros"] == 18_700
    status, body = await api.call("GET", f"/v1/calls/{one}", partner=other)
    assert status == 404, body  # another partner's call does not exist for it
    status, _ = await api.call("GET", f"/v1/calls/call_{'0' * 24}", partner=pid)
    assert status == 404


async def test_cursor_pages_are_stable_under_inserts(api: Api) -> None:
    pid = await api.partner()
    tid = await api.tenant(pid)
    first = [summary(tenant=tid, at=BASE + timedelta(seconds=i)) for i in range(35)]
    # Two calls at the very same instant: the id breaks the tie.
    first.append(summary(tenant=tid, at=BASE + timedelta(seconds=20)))
    for s in first:
        await record(api, s)
    seen: list[str] = []
    cursor: str | None = None
    page = 0
    while True:
        params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        status, body = await api.call("GET", "/v1/calls", partner=pid, params=params)
        assert status == 200, body
        seen += [c["linkedid"] for c in body["items"]]
        cursor, page = body["next_cursor"], page + 1
        # Calls keep arriving between pages: newer ones (before the cursor in the
        # newest-first order) must not shift the pages still to come.
        await record(api, summary(tenant=tid, at=NOW + timedelta(seconds=page)))
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == len(first)
    assert set(seen) == {s.call_id for s in first}


# ---------------------------------------------------------------- export


async def test_csv_export_streams_every_row(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    tid = await api.tenant(pid)
    await record(api, summary(tenant=tid, at=BASE))
    template = await pool.fetchrow("SELECT * FROM call_records WHERE tenant_id = $1", tid)
    n = 20_000
    columns = list(template.keys())
    rows = []
    for i in range(n):
        row = dict(template)
        row.update(id=f"call_{i:024x}", linkedid=f"bulk.{tid}.{i}",
                   started_at=BASE - timedelta(seconds=i + 1))
        rows.append(tuple(row[c] for c in columns))
    await pool.copy_records_to_table("call_records", records=rows, columns=columns)

    resp = await api.client.get("/v1/calls/export", params={"tenant_id": tid},
                                headers={"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": pid})
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert resp.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in resp.headers
    chunks, size, lines, partial = 0, 0, 0, b""
    async for chunk in resp.content.iter_chunked(64 * 1024):
        chunks += 1
        size += len(chunk)
        data = partial + chunk
        lines += data.count(b"\n")
        partial = data[data.rfind(b"\n") + 1:]
    assert lines == n + 2  # header + the bulk + the one recorded
    assert chunks > 10 and size > 1_000_000
    # Oldest first, and the header names every record field.
    status, text = await api.call("GET", "/v1/calls/export", partner=pid,
                                  params={"tenant_id": tid, "started_from": BASE.isoformat()})
    header, *body = text.strip().split("\n")
    assert header.split(",")[:3] == ["id", "linkedid", "tenant_id"] and len(body) == 1
    status, body_ = await api.call("GET", "/v1/calls/export", partner=pid, params={"direction": "up"})
    assert status == 422 and body_["field"] == "direction"


# ---------------------------------------------------------------- profiles, decks, usage, wallet


async def test_billing_profile_validation_names_the_field(api: Api) -> None:
    pid, other = await api.partner(), await api.partner()
    tid = await api.tenant(pid)
    status, body = await api.call("GET", f"/v1/tenants/{tid}/billing-profile", partner=pid)
    # A new tenant is on its partner's default profile, with no rates of its own.
    assert status == 200 and body["profile_name"] == "Pay-As-You-Go" and body["per_minute_micros"] is None, body
    for fields, field in (({"per_minute_micros": -1}, "per_minute_micros"),
                          ({"connect_fee_micros": -5}, "connect_fee_micros"),
                          ({"toll_free_per_minute_micros": -1}, "toll_free_per_minute_micros"),
                          ({"increment_seconds": 0}, "increment_seconds"),
                          ({"min_seconds": "sixty"}, "min_seconds"),
                          ({"rounding": "sideways"}, "rounding"),
                          ({"charge_inbound": "yes"}, "charge_inbound"),
                          ({"surprise": 1}, "surprise"),
                          ({"profile_id": "bpr_nope"}, "profile_id")):
        status, body = await put_profile(api, pid, tid, **fields)
        assert status == 422 and body["field"] == field, (fields, body)
    status, body = await put_profile(api, pid, tid, connect_fee_micros=1_000, rounding="up")
    assert status == 200 and body["connect_fee_micros"] == 1_000 and body["rounding"] == "up"
    status, got = await api.call("GET", f"/v1/tenants/{tid}/billing-profile", partner=pid)
    assert status == 200 and got == body
    status, _ = await put_profile(api, other, tid)
    assert status == 404  # another partner's tenant
    status, _ = await api.call("GET", f"/v1/tenants/{tid}/billing-profile", partner=other)
    assert status == 404


DECK = ("rate_id,prefix,per_minute,connect_fee,min_seconds,increment_seconds,rounding,effective_from\n"
        "uk,44,0.09,0,60,6,up,2020-01-01T00:00:00Z\n"
        "uk-mobile,447,0.20,0,60,6,up,2020-01-01T00:00:00Z\n")


async def test_retail_deck_validation_and_use(api: Api) -> None:
    pid = await api.partner()
    tid = await api.tenant(pid)
    bad = ((DECK.replace("per_minute", "price_per_minute", 1), "price_per_minute"),
           (DECK.replace("0.20", "twenty"), "line 3, column 'per_minute'"),
           (DECK.replace(",6,up,2020", ",0,up,2020", 1), "line 2, column 'increment_seconds'"),
           ("", "line 1"))
    for text, detail in bad:
        status, body = await api.call("PUT", "/v1/rate-decks/retail", partner=pid, data=text.encode())
        assert status == 422 and body["field"] == "body" and detail in body["detail"], body
    status, body = await api.call("PUT", "/v1/rate-decks/retail", partner=pid, data=b"\xff\xfe")
    assert status == 422
    status, body = await api.call("PUT", "/v1/rate-decks/retail", partner=pid, data=DECK.encode())
    assert status == 200 and body["rates"] == 2, body
    assert (await put_profile(api, pid, tid))[0] == 200
    s = summary(tenant=tid, at=BASE, dialed="+447700900123", answered_s=30.0)
    await record(api, s)
    status, rec = await api.call("GET", f"/v1/calls/{call_record_id(s.call_id)}", partner=pid)
    assert rec["call_class"] == "international" and rec["retail_rate_id"].startswith("uk-mobile")
    assert rec["retail_micros"] == 200_000  # 60 s minimum at $0.20/min


async def test_usage_summary_and_wallet(api: Api, pool: asyncpg.Pool) -> None:
    pid, other = await api.partner(), await api.partner()
    await make_active(pool, pid)  # an ACTIVE partner's wallet pays for its calls (none funded it here)
    tid = await api.tenant(pid)
    assert (await put_profile(api, pid, tid))[0] == 200
    # The summary is of the period in force now: the tenant's first, which starts at its creation
    # (docs/profiles.md), so the calls start after it, whatever the time of day the test runs.
    created = await pool.fetchval("SELECT created_at FROM tenants WHERE id = $1", tid)
    at = datetime.now(UTC)
    assert at > created
    for s in (summary(tenant=tid, at=at), summary(tenant=tid, at=at),
              summary(tenant=tid, at=at, dialed="102"),
              summary(tenant=tid, at=at, dialed="+15015550123", answered_s=None, dial_status="BUSY")):
        await record(api, s)
    status, usage = await api.call("GET", f"/v1/tenants/{tid}/usage", partner=pid)
    assert status == 200, usage
    lines = {line["call_class"]: line for line in usage["lines"]}
    assert lines["toll_free"]["calls"] == 2 and lines["toll_free"]["billable_s"] == 132
    assert lines["toll_free"]["minutes"] == 3 and lines["toll_free"]["retail_micros"] == 66_000
    assert lines["internal"]["retail_micros"] == 0 and lines["local"]["billable_s"] == 0
    assert usage["calls"] == 4 and usage["retail_micros"] == 66_000
    assert usage["cycle_start"] == created.date().isoformat()  # a first period is named by its first day
    records = await pool.fetch("SELECT * FROM call_records WHERE tenant_id = $1", tid)
    assert usage["wholesale_micros"] == sum(r["wholesale_micros"] or 0 for r in records) == 37_400
    entries = await pool.fetch("SELECT kind, amount, tenant_id, reference, call_id FROM wallet_entries"
                               " WHERE partner_id = $1", pid)
    assert {(e["kind"], e["tenant_id"]) for e in entries} == {("usage_toll_free", tid)}
    assert sum(e["amount"] for e in entries) == -37_400
    assert all(e["reference"] == f"call:{e['call_id']}" for e in entries)
    assert await pool.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1", pid) == -37_400
    assert (await api.call("GET", f"/v1/tenants/{tid}/usage", partner=other))[0] == 404


async def test_a_trial_partners_calls_are_rated_but_draw_nothing(api: Api, pool: asyncpg.Pool) -> None:
    """Seed 003 trial: "You won't be charged": records and usage as usual, no wallet entry."""
    pid = await api.partner()  # a new partner is TRIAL
    tid = await api.tenant(pid)
    assert (await put_profile(api, pid, tid))[0] == 200
    await record(api, summary(tenant=tid, at=BASE))
    assert await pool.fetchval("SELECT wholesale_micros FROM call_records WHERE tenant_id = $1", tid) > 0
    assert await pool.fetchval("SELECT calls FROM tenant_usage WHERE tenant_id = $1", tid) == 1
    assert await pool.fetchval("SELECT count(*) FROM wallet_entries WHERE partner_id = $1", pid) == 0
    assert await pool.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1", pid) is None


# ---------------------------------------------------------------- ingestion idempotency


async def test_the_same_call_recorded_twice_counts_once(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    await make_active(pool, pid)
    tid = await api.tenant(pid)
    assert (await put_profile(api, pid, tid))[0] == 200
    s = summary(tenant=tid, at=BASE)
    await record(api, s)
    await record(api, s)  # the live path again (a replay after a reconnect)
    await record(api, replace(s, late=True))  # the reconciler's rebuild of the same call
    # Recorded concurrently from two connections: the unique linkedid decides.
    twin = summary(tenant=tid, at=BASE + timedelta(minutes=1))
    import asyncio

    await asyncio.gather(*(record(api, twin) for _ in range(4)))
    # And through the reconciler from Asterisk's CDR rows of the first call.
    await pool.execute(
        "INSERT INTO asterisk_cdr (start, answer, \"end\", src, dst, channel, dstchannel, disposition,"
        " accountcode, uniqueid, linkedid, received_at) VALUES ($1, $2, $3, '101', $4, 'PJSIP/t_101-1',"
        " 'PJSIP/carrier-2', 'ANSWERED', $5, $6, $6, now() - interval '1 hour')",
        s.started_at.timestamp(), s.answered_at.timestamp(), s.ended_at.timestamp(), s.dialed, tid, s.call_id)
    assert await reconcile_once(pool, api.recorder, CallTracker(), settle_seconds=1.0) == 0

    for linkedid in (s.call_id, twin.call_id):
        cid = call_record_id(linkedid)
        assert await pool.fetchval("SELECT count(*) FROM call_records WHERE linkedid = $1", linkedid) == 1
        assert await pool.fetchval("SELECT count(*) FROM wallet_entries WHERE call_id = $1", cid) == 1
        events = await pool.fetch("SELECT type FROM events WHERE convert_from(body, 'UTF8') LIKE '%' || $1 || '%'",
                                  cid)
        assert sorted(e["type"] for e in events) == ["call.answered", "call.completed", "call.initiated"]
    usage = await pool.fetchrow("SELECT * FROM tenant_usage WHERE tenant_id = $1", tid)
    assert usage["calls"] == 2 and usage["billable_s"] == 132
    assert await pool.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1", pid) == -37_400
    assert not await pool.fetchval("SELECT bool_or(NOT handled) FROM asterisk_cdr WHERE linkedid = $1", s.call_id)


async def test_usage_counts_by_the_tenant_billing_cycle(api: Api, pool: asyncpg.Pool) -> None:
    """The cycle starts on the tenant's anchor day at local midnight, as its caps do."""
    pid = await api.partner()
    tz = ZoneInfo("America/Los_Angeles")
    status, body = await api.call("POST", "/v1/tenants", partner=pid, json={
        "name": "Anchored", "billing_email": "b@x.co", "timezone": "America/Los_Angeles"})
    assert status == 201, body
    tid = body["id"]
    midnight = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    await pool.execute("INSERT INTO tenant_limits (tenant_id, billing_anchor_day) VALUES ($1, $2)",
                       tid, midnight.day)  # today, locally: the cycle began at local midnight
    assert (await put_profile(api, pid, tid))[0] == 200
    for at in (midnight - timedelta(seconds=70), midnight + timedelta(seconds=1)):
        await record(api, summary(tenant=tid, at=at.astimezone(UTC)))
    status, usage = await api.call("GET", f"/v1/tenants/{tid}/usage", partner=pid)
    assert status == 200, usage
    assert usage["cycle_start"] == midnight.date().isoformat()
    assert usage["calls"] == 1, usage  # the call before local midnight is in the previous cycle
    cycles = await pool.fetch("SELECT cycle_start FROM tenant_usage WHERE tenant_id = $1 ORDER BY 1", tid)
    assert [r["cycle_start"] for r in cycles][-1] == midnight.date() and len(cycles) == 2
