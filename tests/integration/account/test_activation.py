"""Trial, activation and trial expiry against PostgreSQL and localstripe, over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from account_world import World
from localstripe_support import CARD_DECLINED_ON_CHARGE
from wallet_support import ledger_mismatches

from account_support import activate_and_fund
from controlplane.account.cycle import prorate
from controlplane.account.jobs import run_trial_expiry
from controlplane.payments.charges import idempotency_key

STARTER_FEE = 249_000_000
CREDIT = 25_000_000  # account.initial_wallet_credit_micros default


async def test_a_new_partner_is_trial_for_14_days_and_existing_behaviour_is_visible(world: World) -> None:
    pid = await world.partner()
    r = await world.call("GET", "/v1/account", partner=pid)
    assert r.status == 200, r.body
    created = await world.pool.fetchval("SELECT created_at FROM partners WHERE id = $1", pid)
    assert r.body["status"] == "TRIAL" and r.body["tier"] == "STARTER"
    assert datetime.fromisoformat(r.body["trial_ends_at"]) == created + timedelta(days=14)
    assert r.body["trial_days_left"] == 14 and r.body["next_charge_at"] is None
    assert r.body["platform_fee_billing"] == "card"
    assert r.body["prices"]["monthly_fee_micros"] == STARTER_FEE and r.body["prices"]["currency"] == "USD"


async def test_activation_needs_a_card_then_charges_the_prorated_fee_and_credits_the_wallet(world: World) -> None:
    pid = await world.partner()
    refused = await world.call("POST", "/v1/account/activation", partner=pid)
    assert refused.status == 409 and refused.body["code"] == "no_payment_method"
    assert await world.pool.fetchval("SELECT status FROM partners WHERE id = $1", pid) == "TRIAL"

    method = await world.card(pid)
    before = datetime.now(UTC)
    r = await world.call("POST", "/v1/account/activation", partner=pid)
    assert r.status == 201, r.body
    fee = prorate(STARTER_FEE, before)
    assert r.body["platform_fee_micros"] == fee and r.body["wallet_credit_micros"] == CREDIT
    assert r.body["charged_micros"] == fee + CREDIT and r.body["account"]["status"] == "ACTIVE"
    # one card charge at localstripe, of exactly that, on the default card
    [intent] = world.stripe.intents_for(idempotency_key(pid, f"activation:{pid}"))
    assert (intent.amount, intent.status, intent.payment_method) == ((fee + CREDIT) // 10_000, "succeeded", method)
    # the wallet got the credit as a top_up entry with the contract's reference
    entry = await world.pool.fetchrow("SELECT kind, amount FROM wallet_entries WHERE partner_id = $1"
                                      " AND reference = $2", pid, f"activation:{pid}")
    assert (entry["kind"], entry["amount"]) == ("top_up", CREDIT)
    assert await world.balance(pid) == CREDIT
    # a numbered invoice with its PDF
    invoices = await world.call("GET", "/v1/account/invoices", partner=pid)
    [invoice] = invoices.body["items"]
    assert invoice["id"] == r.body["invoice_id"] and invoice["purpose"] == "activation"
    assert invoice["number"].startswith(f"SUB-{before.year}-") and invoice["amount_micros"] == fee + CREDIT
    assert invoice["kind"] == "subscription_invoice"
    pdf = await world.call("GET", invoice["pdf_url"], partner=pid)
    assert pdf.status == 200 and pdf.content_type == "application/pdf" and pdf.raw.startswith(b"%PDF")
    assert invoice["number"].encode() in pdf.raw or len(pdf.raw) > 500
    # events and the signal
    [activated] = await world.events(pid, "subscription.activated")
    assert (activated["previous_status"], activated["status"]) == ("TRIAL", "ACTIVE")
    assert any(c.partner_id == pid and (c.previous, c.status) == ("TRIAL", "ACTIVE") for c in world.status_changes)
    # sent again: refused, nothing charged twice
    again = await world.call("POST", "/v1/account/activation", partner=pid)
    assert again.status == 409 and again.body["code"] == "already_active"
    assert len(world.stripe.intents_for(idempotency_key(pid, f"activation:{pid}"))) == 1
    assert await ledger_mismatches(world.pool) == []


async def test_a_declined_activation_changes_nothing_and_emits_payment_failed(world: World) -> None:
    pid = await world.partner()
    await world.card(pid, CARD_DECLINED_ON_CHARGE)
    r = await world.call("POST", "/v1/account/activation", partner=pid)
    assert r.status == 402, r.body
    assert await world.pool.fetchval("SELECT status FROM partners WHERE id = $1", pid) == "TRIAL"
    assert await world.balance(pid) == 0
    [failed] = await world.events(pid, "payment.failed")
    assert failed["reference"] == f"activation:{pid}" and failed["code"] and failed["currency"] == "USD"
    assert failed["payer"] == "partner"
    assert (await world.call("GET", "/v1/account/invoices", partner=pid)).body["items"] == []
    # a working card: activation goes through (a new attempt of the same due)
    method = await world.card(pid)
    assert (await world.call("POST", f"/v1/account/payment-methods/{method}/default", partner=pid)).status == 200
    ok = await world.call("POST", "/v1/account/activation", partner=pid)
    assert ok.status == 201, ok.body
    assert await world.balance(pid) == CREDIT


async def test_trial_numbers_pay_their_setup_fee_at_activation(world: World) -> None:
    pid = await world.partner()
    # a number bought in trial: the wallet paid nothing then (its setup fee is on the DID)
    await world.pool.execute(
        "INSERT INTO dids (id, partner_id, number, status, kind, setup_micros, monthly_micros, billing_since)"
        " VALUES ('did_trial_' || $1, $1, '+1501555' || lpad((random()*9999)::int::text, 4, '0'), 'ACTIVE',"
        " 'local', 1000000, 1750000, now())", pid)
    await world.card(pid)
    r = await world.call("POST", "/v1/account/activation", partner=pid)
    assert r.status == 201, r.body
    assert r.body["setup_fees_micros"] == 1_000_000
    entry = await world.pool.fetchrow("SELECT kind, amount FROM wallet_entries WHERE partner_id = $1"
                                      " AND reference = $2", pid, f"setup:did_trial_{pid}")
    assert (entry["kind"], entry["amount"]) == ("setup_fee", -1_000_000)
    assert await world.balance(pid) == CREDIT - 1_000_000


async def test_an_ended_trial_suspends_and_activation_at_any_time_restores(world: World) -> None:
    pid = await world.partner()
    ends = await world.pool.fetchval("SELECT trial_ends_at FROM partners WHERE id = $1", pid)
    assert pid not in await run_trial_expiry(world.pool, None, ends - timedelta(seconds=1))
    world.status_changes.clear()
    suspended = await run_trial_expiry(world.pool, world.services.status_changed, ends)
    assert pid in suspended
    assert await run_trial_expiry(world.pool, world.services.status_changed, ends) == []  # once
    assert await world.pool.fetchval("SELECT status FROM partners WHERE id = $1", pid) == "SUSPENDED"
    [updated] = await world.events(pid, "subscription.updated")
    assert (updated["previous_status"], updated["status"], updated["reason"]) == ("TRIAL", "SUSPENDED",
                                                                                  "trial_ended")
    assert [(c.previous, c.status) for c in world.status_changes if c.partner_id == pid] == [("TRIAL", "SUSPENDED")]
    await world.card(pid)
    r = await world.call("POST", "/v1/account/activation", partner=pid)
    assert r.status == 201, r.body
    assert r.body["account"]["status"] == "ACTIVE"
    assert [(c.previous, c.status) for c in world.status_changes if c.partner_id == pid][-1] == ("SUSPENDED",
                                                                                                 "ACTIVE")


async def test_the_fixture_makes_a_funded_active_partner_through_the_ledger(world: World) -> None:
    pid = await world.partner()
    funded = await activate_and_fund(world.client.request, pid, platform_token="platform-token",
                                     micros=40_000_000)
    assert funded.balance_micros == 40_000_000 == await world.balance(pid)
    assert await world.pool.fetchval("SELECT status FROM partners WHERE id = $1", pid) == "ACTIVE"
    kinds = [r["kind"] for r in await world.pool.fetch("SELECT kind FROM wallet_entries WHERE partner_id = $1",
                                                        pid)]
    assert kinds == ["manual_adjustment"]
    # the comp activation is the platform's only: the portal and keys are refused
    other = await world.partner()
    refused = await world.call("POST", f"/v1/partners/{other}/activation", json={"reason": "x"})
    assert refused.status == 403
    assert await ledger_mismatches(world.pool) == []
