"""The wallet's routes over real HTTP on PostgreSQL and localstripe: top-ups by card (once per
Idempotency-Key, concurrent ones adding up), bad amounts, declines, operator adjustments,
history with filters and cursor pages, streamed CSV, auto-recharge settings."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import asyncpg
import pytest
from localstripe_support import CARD_DECLINED_ON_CHARGE, LocalStripe
from wallet_support import ledger_mismatches

Api = Any  # conftest.Api: the app over HTTP, its wallet services and clock
PLATFORM = "platform-token"


async def test_a_fresh_wallet_is_zero_with_auto_recharge_off(api: Api) -> None:
    pid = await api.partner()
    r = await api.call("GET", "/v1/wallet", pid)
    assert r.status == 200 and r.body["balance_micros"] == 0 and r.body["currency"] == "USD"
    assert r.body["auto_recharge"] == {"enabled": False, "threshold_micros": 0, "amount_micros": 0,
                                       "disabled_reason": None, "currency": "USD"}
    assert r.body["low_balance_threshold_micros"] == 25_000_000


async def test_a_top_up_charges_the_card_once_per_idempotency_key(api: Api, localstripe: LocalStripe,
                                                                  pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    await api.add_card(localstripe, pid)
    first = await api.top_up(pid, 50_000_000, key="key-1")
    assert first.status == 201, first.body
    assert first.body["entry"]["kind"] == "top_up" and first.body["entry"]["reference"] == "topup:key-1"
    assert first.body["balance_micros"] == 50_000_000
    again = await api.top_up(pid, 50_000_000, key="key-1")
    assert again.status == 201 and again.headers.get("Idempotent-Replayed") == "true"  # the middleware's replay
    # Past the middleware (another body, same key): still the one charge and the one credit.
    assert (await api.services.top_up(pid, 50_000_000, "key-1"))[1] is False
    assert len(localstripe.intents_for(f"{pid}:topup:key-1")) == 1
    assert await pool.fetchval("SELECT count(*) FROM wallet_entries WHERE partner_id = $1", pid) == 1
    assert (await api.call("GET", "/v1/wallet", pid)).body["balance_micros"] == 50_000_000


async def test_concurrent_top_ups_add_up_and_the_ledger_holds(api: Api, localstripe: LocalStripe,
                                                              pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    await api.add_card(localstripe, pid)
    replies = await asyncio.gather(*(api.top_up(pid, 1_000_000 * (i + 1), key=f"c-{i}") for i in range(8)))
    assert [r.status for r in replies] == [201] * 8, [r.body for r in replies]
    expected = sum(1_000_000 * (i + 1) for i in range(8))
    assert await pool.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1", pid) == expected
    assert await pool.fetchval("SELECT sum(amount) FROM wallet_entries WHERE partner_id = $1", pid) == expected
    assert await ledger_mismatches(pool) == []


@pytest.mark.parametrize("amount, why", [(-5_000_000, "greater than 0"), (0, "greater than 0"),
                                         (1_234_567, "whole cents"), (1.5, "int"), ("10", "int"),
                                         (10**13, "at most")])
async def test_bad_top_up_amounts_are_422_naming_the_field(api: Api, pool: asyncpg.Pool, amount: object,
                                                          why: str) -> None:
    pid = await api.partner()
    r = await api.call("POST", "/v1/wallet/top-ups", pid, {"amount_micros": amount},
                       headers={"Idempotency-Key": f"bad-{amount}"})
    assert r.status == 422 and r.body["field"] == "amount_micros" and why in r.body["detail"], r.body
    assert await pool.fetchval("SELECT count(*) FROM wallet_entries WHERE partner_id = $1", pid) == 0
    assert await pool.fetchval("SELECT count(*) FROM payment_charges WHERE partner_id = $1", pid) == 0


async def test_a_top_up_needs_an_idempotency_key_and_a_card(api: Api) -> None:
    pid = await api.partner()
    r = await api.call("POST", "/v1/wallet/top-ups", pid, {"amount_micros": 1_000_000})
    assert r.status == 422 and r.body["field"] == "Idempotency-Key"
    r = await api.top_up(pid, 1_000_000)
    assert r.status == 409 and r.body["code"] == "no_payment_method"


async def test_a_declined_top_up_is_402_credits_nothing_and_emits_payment_failed(
        api: Api, localstripe: LocalStripe, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    await api.add_card(localstripe, pid, CARD_DECLINED_ON_CHARGE)
    r = await api.top_up(pid, 20_000_000, key="declined")
    assert r.status == 402 and r.body["code"] == "payment_declined", r.body
    assert await pool.fetchval("SELECT count(*) FROM wallet_entries WHERE partner_id = $1", pid) == 0
    assert await pool.fetchval("SELECT count(*) FROM events WHERE partner_id = $1 AND type = 'payment.failed'",
                               pid) == 1


async def test_adjustments_are_the_platforms_with_a_reason_once_per_reference(api: Api,
                                                                              pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    body = {"amount_micros": 7_000_000, "reason": "goodwill after the outage", "reference": "tkt-1"}
    assert (await api.call("POST", "/v1/wallet/adjustments", pid, body)).status == 403  # the portal
    r = await api.call("POST", "/v1/wallet/adjustments", json={**body, "partner_id": pid}, token=PLATFORM)
    assert r.status == 201 and r.body["entry"]["kind"] == "manual_adjustment", r.body
    assert r.body["entry"]["note"] == "goodwill after the outage" and r.body["balance_micros"] == 7_000_000
    again = await api.call("POST", "/v1/wallet/adjustments", pid, body, token=PLATFORM)
    assert again.status == 200 and again.body["balance_micros"] == 7_000_000
    other = await api.call("POST", "/v1/wallet/adjustments", pid, {**body, "amount_micros": 1}, token=PLATFORM)
    assert other.status == 409 and other.body["field"] == "reference"
    debit = await api.call("POST", "/v1/wallet/adjustments", pid,
                           {**body, "reference": "tkt-2", "direction": "debit", "amount_micros": 2_000_000},
                           token=PLATFORM)
    assert debit.status == 201 and debit.body["entry"]["amount_micros"] == -2_000_000
    assert debit.body["balance_micros"] == 5_000_000
    bad = await api.call("POST", "/v1/wallet/adjustments", pid,
                         {"amount_micros": -1, "reason": "", "reference": "a b", "direction": "up"}, token=PLATFORM)
    assert bad.status == 422
    assert [e["field"] for e in bad.body["errors"]] == ["amount_micros", "reference", "reason", "direction"]
    missing = await api.call("POST", "/v1/wallet/adjustments", json=body, token=PLATFORM)
    assert missing.status == 422 and missing.body["field"] == "partner_id"
    assert await pool.fetchval("SELECT count(*) FROM wallet_entries WHERE partner_id = $1", pid) == 2


async def test_history_filters_pages_and_csv(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    for i in range(5):
        r = await api.call("POST", "/v1/wallet/adjustments", pid,
                           {"amount_micros": 1_000_000, "reason": f"credit {i}", "reference": f"h-{i}"},
                           token=PLATFORM)
        assert r.status == 201
    await pool.execute("UPDATE wallet_entries SET created_at = created_at - interval '10 days'"
                       " WHERE partner_id = $1 AND reference IN ('adjust:h-0', 'adjust:h-1')", pid)
    await api.call("POST", "/v1/wallet/adjustments", pid, {"amount_micros": 500_000, "reason": "fix",
                                                           "reference": "h-d", "direction": "debit"},
                   token=PLATFORM)
    # Every page, newest first, through the cursor.
    seen, cursor = [], None
    while True:
        r = await api.call("GET", "/v1/wallet/entries", pid, params={"limit": "2", **({"cursor": cursor}
                                                                                      if cursor else {})})
        assert r.status == 200, r.body
        seen += [e["reference"] for e in r.body["items"]]
        cursor = r.body["next_cursor"]
        assert r.body["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert seen == ["adjust:h-d", "adjust:h-4", "adjust:h-3", "adjust:h-2", "adjust:h-1", "adjust:h-0"]
    # Date range: `to` is exclusive; the two old ones are before it.
    recent = (await api.call("GET", "/v1/wallet/entries", pid, params={
        "from": (await pool.fetchval("SELECT now() - interval '1 day'")).isoformat()})).body["items"]
    assert len(recent) == 4
    old = await api.call("GET", "/v1/wallet/entries", pid, params={"to": (
        await pool.fetchval("SELECT now() - interval '5 days'")).isoformat()})
    assert [e["reference"] for e in old.body["items"]] == ["adjust:h-1", "adjust:h-0"]
    by_kind = await api.call("GET", "/v1/wallet/entries", pid, params={"kind": "top_up,refund"})
    assert by_kind.status == 200 and by_kind.body["items"] == []
    assert len((await api.call("GET", "/v1/wallet/entries", pid,
                               params={"kind": "manual_adjustment"})).body["items"]) == 6
    for params, field in (({"kind": "usage"}, "kind"), ({"from": "yesterday"}, "from"),
                          ({"cursor": "nope"}, "cursor"), ({"limit": "0"}, "limit"), ({"format": "xml"}, "format")):
        bad = await api.call("GET", "/v1/wallet/entries", pid, params=params)
        assert bad.status == 422 and bad.body["field"] == field, (params, bad.body)
    # CSV, streamed, oldest first: ?format=csv or Accept: text/csv, same filters.
    for how in ({"params": {"format": "csv"}}, {"headers": {"Accept": "text/csv"}}):
        r = await api.call("GET", "/v1/wallet/entries", pid, **how)  # type: ignore[arg-type]
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [row["reference"] for row in rows] == list(reversed(seen))
        assert {row["kind"] for row in rows} == {"manual_adjustment"} and rows[-1]["amount_micros"] == "-500000"
        assert rows[0]["currency"] == "USD" and rows[0]["note"] == "credit 0"
    empty = await api.call("GET", "/v1/wallet/entries", pid, params={"format": "csv", "kind": "refund"})
    assert empty.text.strip() == "id,created_at,kind,amount_micros,currency,reference,tenant_id,call_id,note"


async def test_auto_recharge_settings_validate_and_need_a_card(api: Api, localstripe: LocalStripe) -> None:
    pid = await api.partner()
    on = {"enabled": True, "threshold_micros": 50_000_000, "amount_micros": 200_000_000}
    r = await api.call("PUT", "/v1/wallet/auto-recharge", pid, on)
    assert r.status == 409 and r.body["code"] == "no_payment_method"
    await api.add_card(localstripe, pid)
    r = await api.call("PUT", "/v1/wallet/auto-recharge", pid, on)
    assert r.status == 200 and r.body["enabled"] is True and r.body["disabled_reason"] is None
    for body, fields in (({**on, "amount_micros": 0}, ["amount_micros"]),
                         ({**on, "amount_micros": 100_000_001, "threshold_micros": -1},
                          ["threshold_micros", "amount_micros"]),
                         ({**on, "amount_micros": 2.5}, ["amount_micros"])):
        bad = await api.call("PUT", "/v1/wallet/auto-recharge", pid, body)
        assert bad.status == 422 and [e["field"] for e in bad.body["errors"]] == fields, bad.body
    assert (await api.call("GET", "/v1/wallet", pid)).body["auto_recharge"]["amount_micros"] == 200_000_000


async def test_the_credits_route_still_works_as_an_adjustment(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    credit = {"amount_micros": 3_000_000, "reference": "wire-9", "note": "prepayment"}
    r = await api.call("POST", "/v1/wallet/credits", pid, credit, token=PLATFORM)
    assert r.status == 201 and r.body["reference"] == "wire-9" and r.body["balance_micros"] == 3_000_000
    row = await pool.fetchrow("SELECT kind, reference, note FROM wallet_entries WHERE partner_id = $1", pid)
    assert tuple(row) == ("manual_adjustment", "adjust:wire-9", "prepayment")
    created_at = r.body["created_at"]
    again = await api.call("POST", "/v1/wallet/credits", pid, credit, token=PLATFORM)
    assert again.status == 200 and again.body["created_at"] == created_at  # the first entry's
