"""Auto-recharge and the low-balance warning on PostgreSQL and localstripe: one charge an hour
at most, a decline emits payment.failed and turns it off until a new card, the last card
removed turns it off, the warning once per crossing, the LISTEN path end to end, and a
charge whose credit was lost is credited by the sweep."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import msgspec
import pytest
from localstripe_support import CARD_DECLINED_ON_CHARGE, LocalStripe
from mail_support import set_brand, worker
from smtp_support import smtp_server
from wallet_support import ledger_mismatches

from controlplane.events import store as events_store
from controlplane.numbers.services import NumberServices
from controlplane.shared.problems import Problem
from controlplane.mail import notifier

from controlplane.payments.charges import charge_partner
from controlplane.wallet.models import recharge_reference

Api = Any  # conftest.Api
PLATFORM = "platform-token"
ON = {"enabled": True, "threshold_micros": 50_000_000, "amount_micros": 100_000_000}


async def adjust(api: Api, pid: str, micros: int, ref: str) -> int:
    body = {"amount_micros": abs(micros), "reason": "test", "reference": ref,
            "direction": "credit" if micros > 0 else "debit"}
    r = await api.call("POST", "/v1/wallet/adjustments", pid, body, token=PLATFORM)
    assert r.status == 201, r.body
    return int(r.body["balance_micros"])


async def recharges(pool: asyncpg.Pool, pid: str) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT amount, reference FROM wallet_entries WHERE partner_id = $1"
                            " AND kind = 'auto_recharge' ORDER BY id", pid)


async def test_under_the_threshold_one_charge_then_none_within_the_hour(api: Api, localstripe: LocalStripe,
                                                                       pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    await api.add_card(localstripe, pid)
    assert (await api.call("PUT", "/v1/wallet/auto-recharge", pid, ON)).status == 200
    assert await adjust(api, pid, 10_000_000, "start") == 10_000_000
    posted = await api.services.recharge(pid)
    assert posted is not None and posted.created and posted.balance_micros == 110_000_000
    await adjust(api, pid, -80_000_000, "spend-1")  # 30: under the threshold again, same hour
    again = await api.services.recharge(pid)
    assert again is not None and not again.created  # the hour's reference: charged and credited once
    reference = recharge_reference(pid, api.clock())
    assert [(r["amount"], r["reference"]) for r in await recharges(pool, pid)] == [(100_000_000, reference)]
    assert len(localstripe.intents_for(f"{pid}:{reference}")) == 1
    api.clock.advance(hours=1)
    later = await api.services.recharge(pid)
    assert later is not None and later.created and later.balance_micros == 130_000_000
    assert len(await recharges(pool, pid)) == 2
    assert await api.services.recharge(pid) is None  # above the threshold: nothing to do
    assert await ledger_mismatches(pool) == []


async def test_a_declined_recharge_emits_payment_failed_and_turns_it_off_until_a_new_card(
        api: Api, localstripe: LocalStripe, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    await api.add_card(localstripe, pid, CARD_DECLINED_ON_CHARGE)
    assert (await api.call("PUT", "/v1/wallet/auto-recharge", pid, ON)).status == 200
    await adjust(api, pid, 20_000_000, "start")
    assert await api.services.recharge(pid) is None
    assert await api.services.recharge(pid) is None  # off now: no second attempt, no second event
    events = await pool.fetch("SELECT body FROM events WHERE partner_id = $1 AND type = 'payment.failed'", pid)
    assert len(events) == 1
    data = msgspec.json.decode(events[0]["body"])["data"]
    assert data["reference"] == recharge_reference(pid, api.clock()) and data["amount_micros"] == 100_000_000
    assert data["currency"] == "USD" and data["code"]
    assert data["payer"] == "partner"  # the tenant-side one says "tenant" (docs/collection.md)
    wallet = (await api.call("GET", "/v1/wallet", pid)).body
    assert wallet["auto_recharge"]["enabled"] is False
    assert wallet["auto_recharge"]["disabled_reason"] == "payment_declined"
    assert await recharges(pool, pid) == []
    # Another card beside the declined default one: still off.
    r = await api.call("POST", "/v1/account/payment-methods", pid, {"payment_method_id": localstripe.card()})
    assert r.status == 201 and r.body["is_default"] is False
    assert (await api.call("GET", "/v1/wallet", pid)).body["auto_recharge"]["enabled"] is False
    # A new default card: back on, and the recharge goes through (a new attempt, same hour).
    await api.add_card(localstripe, pid)
    wallet = (await api.call("GET", "/v1/wallet", pid)).body
    assert wallet["auto_recharge"]["enabled"] is True and wallet["auto_recharge"]["disabled_reason"] is None
    posted = await api.services.recharge(pid)
    assert posted is not None and posted.created and posted.balance_micros == 120_000_000


async def test_a_declined_recharge_emails_the_partner(api: Api, localstripe: LocalStripe,
                                                     pool: asyncpg.Pool) -> None:
    """The whole chain as the daemon runs it: the decline's payment.failed is sequenced (as the
    webhook dispatcher does), the notifier queues the mail, the mail worker sends it to aiosmtpd."""
    pid = await api.partner()
    await set_brand(pool, pid, billing_email="billing@declined.example")
    await api.add_card(localstripe, pid, CARD_DECLINED_ON_CHARGE)
    assert (await api.call("PUT", "/v1/wallet/auto-recharge", pid, ON)).status == 200
    await adjust(api, pid, 1_000_000, "mail")
    assert await api.services.recharge(pid) is None
    async with pool.acquire() as conn, conn.transaction():
        await events_store.sequence_pending(conn, 1000)
    while await notifier.step(pool):
        pass
    async with smtp_server() as smtp:
        while await worker(pool, smtp).run_once():
            pass
        mails = [m for m in await smtp.wait_for(1) if m.rcpt_tos == ["billing@declined.example"]]
    assert len(mails) == 1 and mails[0].message["Subject"].startswith("Payment failed")
    assert (await api.call("GET", "/v1/wallet", pid)).body["auto_recharge"]["enabled"] is False


async def test_removing_the_only_card_turns_auto_recharge_off(api: Api, localstripe: LocalStripe) -> None:
    pid = await api.partner()
    card = await api.add_card(localstripe, pid)
    assert (await api.call("PUT", "/v1/wallet/auto-recharge", pid, ON)).status == 200
    assert (await api.call("DELETE", f"/v1/account/payment-methods/{card}", pid)).status == 204
    auto = (await api.call("GET", "/v1/wallet", pid)).body["auto_recharge"]
    assert (auto["enabled"], auto["disabled_reason"]) == (False, "no_payment_method")
    # The partner's own "off" stays off when a card comes back.
    assert (await api.call("PUT", "/v1/wallet/auto-recharge", pid, {**ON, "enabled": False})).status == 200
    await api.add_card(localstripe, pid)
    assert (await api.call("GET", "/v1/wallet", pid)).body["auto_recharge"]["enabled"] is False


async def test_the_low_balance_warning_once_per_crossing(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    await adjust(api, pid, 30_000_000, "w0")
    assert not await api.services.warn(pid)  # above 25: nothing
    await adjust(api, pid, -10_000_000, "w1")  # 20: crossed
    assert await api.services.warn(pid)
    await adjust(api, pid, -5_000_000, "w2")  # 15: still below, warned already
    assert not await api.services.warn(pid)
    await adjust(api, pid, 40_000_000, "w3")  # 55: back above (re-arms)
    assert not await api.services.warn(pid)
    await adjust(api, pid, -50_000_000, "w4")  # 5: crossed again
    assert await api.services.warn(pid)
    rows = await pool.fetch("SELECT body FROM events WHERE partner_id = $1 AND type = 'wallet.low_balance'"
                            " ORDER BY seq NULLS LAST, created_at", pid)
    assert [msgspec.json.decode(r["body"])["data"]["balance_micros"] for r in rows] == [20_000_000, 5_000_000]
    # A TRIAL partner's wallet is not drawn from: no warning for its (zero) balance.
    trial = await api.partner(active=False)
    await adjust(api, trial, 1_000_000, "t")
    assert not await api.services.warn(trial)


async def test_a_balance_change_reaches_the_signal_and_recharges_through_listen(
        api: Api, localstripe: LocalStripe, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    await api.add_card(localstripe, pid)
    await adjust(api, pid, 60_000_000, "listen-0")  # above the threshold
    assert (await api.call("PUT", "/v1/wallet/auto-recharge", pid, ON)).status == 200
    task = asyncio.create_task(api.follower.run())
    try:
        await asyncio.wait_for(api.follower.listening.wait(), 10)
        api.changes.clear()
        await adjust(api, pid, -55_000_000, "listen")  # 5: under the threshold, the notification does the rest
        for _ in range(200):
            if await recharges(pool, pid):
                break
            await asyncio.sleep(0.05)
        assert len(await recharges(pool, pid)) == 1
        balances = [c.balance_micros for c in api.changes if c.partner_id == pid]
        assert balances[:1] == [5_000_000]
        for _ in range(100):  # the recharge's own post is announced too
            if 105_000_000 in [c.balance_micros for c in api.changes if c.partner_id == pid]:
                break
            await asyncio.sleep(0.05)
        assert [c.balance_micros for c in api.changes if c.partner_id == pid] == [5_000_000, 105_000_000]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_trial_partner_is_not_recharged(api: Api, localstripe: LocalStripe) -> None:
    pid = await api.partner()
    await api.add_card(localstripe, pid)
    assert (await api.call("PUT", "/v1/wallet/auto-recharge", pid, ON)).status == 200
    await api.services.pool.execute("UPDATE partners SET status = 'TRIAL' WHERE id = $1", pid)
    assert await api.services.recharge(pid) is None


async def test_the_sweep_credits_a_charge_whose_credit_was_lost(api: Api, localstripe: LocalStripe,
                                                                pool: asyncpg.Pool) -> None:
    """A top-up that died between the card charge and the credit is credited once, later."""
    pid = await api.partner()
    await api.add_card(localstripe, pid)
    charge = await charge_partner(pool, api.services.payments, partner_id=pid, amount_micros=12_340_000,
                                  reference="topup:died-here", description="Wallet top-up")
    await pool.execute("UPDATE payment_charges SET updated_at = now() - interval '5 minutes' WHERE id = $1",
                       charge.charge_id)
    await api.services.sweep()
    await api.services.sweep()
    rows = await pool.fetch("SELECT kind, amount FROM wallet_entries WHERE partner_id = $1", pid)
    assert [(r["kind"], r["amount"]) for r in rows] == [("top_up", 12_340_000)]
    # The client's retry (same Idempotency-Key) now finds both: no second charge, no second credit.
    retry = await api.top_up(pid, 12_340_000, key="died-here")
    assert retry.status == 200 and retry.body["balance_micros"] == 12_340_000
    assert len(localstripe.intents_for(f"{pid}:topup:died-here")) == 1
    # A notification nobody heard (no follower running): the sweep recharges and warns.
    assert (await api.call("PUT", "/v1/wallet/auto-recharge", pid, ON)).status == 200
    warned = "SELECT count(*) FROM events WHERE partner_id = $1 AND type = 'wallet.low_balance'"
    assert await pool.fetchval(warned, pid) == 1  # 12.34 (the recovered top-up) is under 25: warned once
    await adjust(api, pid, -12_000_000, "unheard")  # 0.34: under both thresholds
    await api.services.sweep()
    assert [r["amount"] for r in await recharges(pool, pid)] == [100_000_000]
    assert await pool.fetchval(warned, pid) == 1  # recharged first (100.34): no second warning
    assert not (await pool.fetchrow("SELECT low_balance_warned FROM partner_wallets WHERE partner_id = $1",
                                    pid))["low_balance_warned"]  # re-armed


async def test_a_purchase_with_an_empty_wallet_recharges_first_when_auto_recharge_is_on(
        api: Api, localstripe: LocalStripe, pool: asyncpg.Pool) -> None:
    """Seed 003: "deducted from your wallet (or charged to your card if your wallet is empty and
    auto-recharge is on)"; without auto-recharge the purchase is refused, nothing charged."""
    numbers = NumberServices(pool, None, payments=api.services.payments)
    await numbers.load_inventory("number,state,city,rate_center\n+15016660001,AR,,\n+15016660002,AR,,\n")
    off = await api.partner()
    await api.add_card(localstripe, off)
    with pytest.raises(Problem) as short:
        await numbers.purchase(off, ["+15016660001"])
    assert short.value.code == "insufficient_funds"
    pid = await api.partner()
    await api.add_card(localstripe, pid)
    assert (await api.call("PUT", "/v1/wallet/auto-recharge", pid,
                           {"enabled": True, "threshold_micros": 0, "amount_micros": 20_000_000})).status == 200
    bought = await numbers.purchase(pid, ["+15016660001"])
    assert bought.wallet_balance_micros == 20_000_000 - bought.setup_total_micros
    kinds = [r["kind"] for r in await pool.fetch("SELECT kind FROM wallet_entries WHERE partner_id = $1"
                                                  " ORDER BY id", pid)]
    assert kinds == ["auto_recharge", "setup_fee"]
    assert await pool.fetchval("SELECT count(*) FROM wallet_entries WHERE partner_id = $1", off) == 0
