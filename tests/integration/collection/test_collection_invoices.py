"""Invoices charged, declined, paid by hand and refunded as credit notes, on PostgreSQL and
localstripe (the Must-show figures: 156.31 with 3.00 of usage)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from localstripe_support import CARD_DECLINED_ON_CHARGE, CARD_OK

from collection_world import USD, World
from controlplane.collection import charges, store
from controlplane.collection.models import ChargeStatus, RefundRequest, TenantCharge
from controlplane.collection.providers import Resolver
from controlplane.collection.refunds import Refunds
from controlplane.collection.rules import StripeMode, charge_reference
from controlplane.config import PaymentsConfig
from controlplane.db.connection import Connection
from controlplane.invoices.compose import Cycle
from controlplane.invoices.jobs import run_invoices
from controlplane.invoices.models import BillingTerms
from controlplane.shared.problems import Problem

MUST_SHOW = [("base_fee", 99 * USD), ("extensions", 40 * USD), ("dids_local", 2_060_000),
             ("minutes_local", 3 * USD)]
TAX = 12_250_000  # total 156.31


async def test_an_issued_invoice_is_charged_once_and_paid(world: World) -> None:
    partner = await world.partner()
    tenant = await world.tenant(partner)
    await world.save_card(partner, tenant, CARD_OK)
    invoice = await world.issue(partner, tenant, MUST_SHOW, TAX)
    paid = await world.invoice(invoice.id)
    assert paid.status.value == "PAID" and paid.paid_micros == 156_310_000
    [event] = await world.events(partner, "invoice.paid")
    assert event["row_tenant_id"] == tenant
    assert event["data"]["invoice_id"] == invoice.id and event["data"]["total_micros"] == 156_310_000
    assert event["data"]["source"] == "card"
    assert [p.invoice_id for p in world.paid if p.partner_id == partner] == [invoice.id]
    key = charges.idempotency_key(partner, charge_reference(invoice.id, 1))
    [intent] = world.stripe.intents_for(key)
    assert intent.amount == 15631 and intent.status == "succeeded"
    # Running it again (the signal twice, a retry of the same attempt, a later attempt) charges nothing.
    again = await charges.collect(world.pool, world.resolver(), world.signals, invoice_id=invoice.id, attempt=1)
    later = await charges.collect(world.pool, world.resolver(), world.signals, invoice_id=invoice.id, attempt=2)
    assert again.status == "paid" and later.status == "nothing_due"
    assert len(world.stripe.intents_for(key)) == 1
    assert len(await world.events(partner, "invoice.paid")) == 1
    # Platform mode: the partner's share is tracked for settlement (3.99 % of 156.31 = 6.24).
    status, mode = await world.call("GET", "/v1/account/stripe", partner)
    assert mode["settlement"]["collected_micros"] == 156_310_000
    assert mode["settlement"]["fees_micros"] == 6_240_000
    assert mode["settlement"]["owed_micros"] == 150_070_000
    status, page = await world.call("GET", f"/v1/invoices/{invoice.id}/payments", partner)
    assert status == 200 and [(p["source"], p["amount_micros"]) for p in page["items"]] == [("card", 156_310_000)]


async def test_a_declined_card_fails_the_invoice_and_the_tenants_payment(world: World) -> None:
    partner = await world.partner()
    tenant = await world.tenant(partner)
    await world.save_card(partner, tenant, CARD_DECLINED_ON_CHARGE)
    invoice = await world.issue(partner, tenant, MUST_SHOW, TAX)
    assert (await world.invoice(invoice.id)).status.value == "SENT"
    [failed] = await world.events(partner, "invoice.failed")
    assert failed["data"]["invoice_id"] == invoice.id and failed["data"]["attempt"] == 1
    assert failed["data"]["amount_micros"] == 156_310_000 and failed["data"]["code"]
    [payment] = await world.events(partner, "payment.failed")
    assert payment["data"]["payer"] == "tenant" and payment["data"]["tenant_id"] == tenant
    assert payment["data"]["invoice_id"] == invoice.id and payment["row_tenant_id"] == tenant
    # The same attempt is not sent to Stripe again; dunning's next attempt charges the new card.
    key = charges.idempotency_key(partner, charge_reference(invoice.id, 1))
    assert len(world.stripe.intents_for(key)) <= 1
    again = await charges.collect(world.pool, world.resolver(), world.signals, invoice_id=invoice.id, attempt=1)
    assert again.status == "declined" and len(await world.events(partner, "payment.failed")) == 1
    good = await world.save_card(partner, tenant, CARD_OK)
    assert (await world.call("POST", f"/v1/tenants/{tenant}/payment-methods/{good}/default", partner))[0] == 200
    retry = await charges.collect(world.pool, world.resolver(), world.signals, invoice_id=invoice.id, attempt=2)
    assert retry.status == "paid"
    assert (await world.invoice(invoice.id)).status.value == "PAID"


async def _pending_first_charge(world: World, partner: str, tenant: str, method: str, invoice_id: str,
                                charge_id: str) -> tuple[str, str]:
    """Attempt 1 of a 20 USD invoice committed PENDING (as a crash leaves it): (customer, reference)."""
    customer = await world.pool.fetchval("SELECT customer_id FROM collection_customers WHERE tenant_id = $1", tenant)
    reference = charge_reference(invoice_id, 1)
    async with world.pool.acquire() as conn:
        await store.insert_charge(conn, TenantCharge(
            charge_id=charge_id + partner[-6:], partner_id=partner, tenant_id=tenant, invoice_id=invoice_id,
            attempt=1, reference=reference, mode=StripeMode.PLATFORM, account="platform", amount_micros=20 * USD,
            application_fee_micros=800_000, currency="USD", status=ChargeStatus.PENDING, customer_id=customer,
            method_id=method, provider_charge_id=None, decline_code=None, decline_message=None, recorded=False))
    return str(customer), reference


async def test_a_charge_left_pending_by_a_crash_is_finished_once(world: World) -> None:
    """The process died after committing PENDING (before or during the Stripe call): the sweeper
    (or the next collect of the invoice) finishes it with the same key, and a new attempt never
    charges the same money twice."""
    partner = await world.partner()
    tenant = await world.tenant(partner)
    method = await world.save_card(partner, tenant, CARD_OK)
    invoice = await world.issue(partner, tenant, [("base_fee", 20 * USD)], send=False)
    customer, reference = await _pending_first_charge(world, partner, tenant, method, invoice.id, "tch_crashed")
    # Stripe charged before the crash: the retry replays that PaymentIntent (same key), no second one.
    first = await world.resolver().for_partner(world.pool, partner)
    await first.provider.charge(customer_id=customer, method_id=method, amount_micros=20 * USD, currency="USD",
                                description=charges.description(invoice.id),
                                idempotency_key=charges.idempotency_key(partner, reference))
    await charges.sweep(world.pool, world.resolver(), world.signals, datetime.now(UTC) + timedelta(minutes=1))
    assert (await world.invoice(invoice.id)).status.value == "PAID"
    outcome = await charges.collect(world.pool, world.resolver(), world.signals, invoice_id=invoice.id, attempt=2)
    assert outcome.status == "nothing_due"
    assert (await world.invoice(invoice.id)).status.value == "PAID"
    assert len(world.stripe.intents_for(charges.idempotency_key(partner, reference))) == 1
    assert world.stripe.intents_for(charges.idempotency_key(partner, charge_reference(invoice.id, 2))) == []


async def test_an_invoice_whose_charge_was_never_started_is_charged_by_the_sweeper(world: World) -> None:
    """The process died after the invoice committed, before its after-commit charge ran."""
    partner = await world.partner()
    tenant = await world.tenant(partner)
    await world.save_card(partner, tenant, CARD_OK)
    invoice = await world.issue(partner, tenant, [("base_fee", 15 * USD)], send=False)
    assert (await world.invoice(invoice.id)).status.value == "SENT"
    await charges.sweep(world.pool, world.resolver(), world.signals, datetime.now(UTC) + timedelta(minutes=1))
    assert (await world.invoice(invoice.id)).status.value == "PAID"
    await charges.sweep(world.pool, world.resolver(), world.signals, datetime.now(UTC) + timedelta(minutes=1))
    assert len(world.stripe.intents_for(charges.idempotency_key(partner, charge_reference(invoice.id, 1)))) == 1


async def test_no_new_attempt_while_an_earlier_one_is_pending(world: World) -> None:
    """Stripe does not answer about attempt 1 (here: a request that cannot be replayed): attempt 2
    must not charge the same money again; the charge stays PENDING for the sweeper."""
    partner = await world.partner()
    tenant = await world.tenant(partner)
    method = await world.save_card(partner, tenant, CARD_OK)
    invoice = await world.issue(partner, tenant, [("base_fee", 20 * USD)], send=False)
    customer, reference = await _pending_first_charge(world, partner, tenant, method, invoice.id, "tch_unknown")
    provider = (await world.resolver().for_partner(world.pool, partner)).provider
    await provider.charge(customer_id=customer, method_id=method, amount_micros=21 * USD, currency="USD",
                          description="another request", idempotency_key=charges.idempotency_key(partner, reference))
    outcome = await charges.collect(world.pool, world.resolver(), world.signals, invoice_id=invoice.id, attempt=2)
    assert outcome.status == "unavailable" and outcome.code == "charge_pending"
    assert world.stripe.intents_for(charges.idempotency_key(partner, charge_reference(invoice.id, 2))) == []
    assert (await world.invoice(invoice.id)).status.value == "SENT"


async def test_a_partial_manual_payment_then_the_rest(world: World) -> None:
    partner = await world.partner()
    tenant = await world.tenant(partner)
    invoice = await world.issue(partner, tenant, MUST_SHOW, TAX)  # no card: no_payment_method
    path = f"/v1/invoices/{invoice.id}/payments"
    status, result = await world.call("POST", path, partner, {"amount_micros": 50 * USD, "reference": "CHK-1001"})
    assert status == 201, result
    assert result["invoice_status"] == "PARTIALLY_PAID" and result["outstanding_micros"] == 106_310_000
    assert result["payment"]["source"] == "manual" and result["payment"]["fee_micros"] == 0
    status, same = await world.call("POST", path, partner, {"amount_micros": 50 * USD, "reference": "CHK-1001"})
    assert status == 200 and same["payment"]["id"] == result["payment"]["id"] and same["paid_micros"] == 50 * USD
    status, problem = await world.call("POST", path, partner, {"amount_micros": 60 * USD, "reference": "CHK-1001"})
    assert status == 409
    status, problem = await world.call("POST", path, partner, {"amount_micros": 200 * USD, "reference": "CHK-1002"})
    assert status == 409 and problem["code"] == "overpayment"
    status, problem = await world.call("POST", path, partner, {"amount_micros": 1_234_567, "reference": ""})
    assert status == 422 and sorted(e["field"] for e in problem["errors"]) == ["amount_micros", "reference"]
    assert await world.events(partner, "invoice.paid") == []
    status, result = await world.call("POST", path, partner, {"amount_micros": 106_310_000, "reference": "WIRE-7"})
    assert status == 201 and result["invoice_status"] == "PAID"
    [event] = await world.events(partner, "invoice.paid")
    assert event["data"]["source"] == "manual"
    assert [p.invoice_id for p in world.paid if p.partner_id == partner] == [invoice.id]
    status, problem = await world.call("POST", path, partner, {"amount_micros": 1 * USD, "reference": "LATE"})
    assert status == 409
    stranger = await world.partner()
    assert (await world.call("POST", path, stranger, {"amount_micros": 1 * USD, "reference": "X"}))[0] == 404


async def test_refunds_are_numbered_credit_notes_never_above_what_was_paid(world: World) -> None:
    partner = await world.partner()
    tenant = await world.tenant(partner)
    await world.save_card(partner, tenant, CARD_OK)
    invoice = await world.issue(partner, tenant, MUST_SHOW, TAX)
    path = f"/v1/invoices/{invoice.id}/refunds"
    status, note = await world.call("POST", path, partner, {"amount_micros": 50 * USD, "reason": "Outage",
                                                            "reference": "r1"})
    assert status == 201, note
    assert note["number"] == "CN-000001" and note["status"] == "SUCCEEDED"
    assert note["usage_credit_micros"] == 960_000  # 3.00 usage x 50 / 156.31, to the cent
    status, same = await world.call("POST", path, partner, {"amount_micros": 50 * USD, "reference": "r1"})
    assert status == 200 and same["id"] == note["id"]
    after = await world.invoice(invoice.id)
    assert after.credited_micros == 50 * USD
    # Stripe refunded the card.
    pi = world.stripe.intents_for(charges.idempotency_key(partner, charge_reference(invoice.id, 1)))[0]
    refunds = world.stripe.client().v1.refunds.list(params={"limit": 100}).data
    assert [r.amount for r in refunds if r.payment_intent == pi.id] == [5000]
    # Over the limit: 106.31 is left; 106.32 is refused and takes no number.
    status, problem = await world.call("POST", path, partner, {"amount_micros": 106_320_000})
    assert status == 409 and problem["code"] == "refund_exceeds_paid"
    assert problem["refundable_micros"] == 106_310_000
    status, rest = await world.call("POST", path, partner, {"amount_micros": 106_310_000})
    assert status == 201 and rest["number"] == "CN-000002"
    assert (await world.invoice(invoice.id)).credited_micros == 156_310_000
    assert (await world.call("POST", path, partner, {"amount_micros": 10_000}))[0] == 409
    # The refunded usage waits as credits for the tenant's next invoice: 0.96 + (3.00 - 0.96).
    credits = await world.pool.fetch("SELECT amount_micros, reference FROM tenant_invoice_items WHERE tenant_id = $1"
                                     " AND kind = 'credit' AND invoice_id IS NULL ORDER BY id", tenant)
    assert [c["amount_micros"] for c in credits] == [960_000, 2_040_000]
    status, page = await world.call("GET", path, partner)
    assert [n["number"] for n in page["items"]] == ["CN-000001", "CN-000002"]
    # The tenant's next invoice (made by the invoices job) takes them off: 99.00 - 3.00.
    now = datetime.now(UTC)
    cycle = Cycle(now - timedelta(days=30), now, BillingTerms(
        model="FLAT", base_fee_micros=99 * USD, included_extensions=0, included_dids=0, included_minutes=0,
        extension_micros=0, did_local_micros=0, did_toll_free_micros=0, per_minute_micros=0))

    async def lookup(conn: Connection, tenant_ids: Sequence[str], at: datetime) -> Mapping[str, Cycle]:
        return {tenant: cycle} if tenant in tenant_ids else {}

    await run_invoices(world.pool, now, lookup=lookup)
    nxt = await world.pool.fetchval("SELECT id FROM tenant_invoices WHERE tenant_id = $1 AND NOT off_cycle", tenant)
    next_invoice = await world.invoice(nxt)
    assert [(line.kind, line.amount_micros) for line in next_invoice.lines] == [
        ("base_fee", 99 * USD), ("credit", -3 * USD)]
    assert next_invoice.subtotal_micros == 96 * USD
    # Settlement of platform mode gives back the refunded money less its fee part.
    settlement = (await world.call("GET", "/v1/account/stripe", partner))[1]["settlement"]
    assert settlement["refunded_micros"] == 156_310_000 and settlement["owed_micros"] == 0


async def test_concurrent_refunds_cannot_exceed_what_was_paid(world: World) -> None:
    partner = await world.partner()
    tenant = await world.tenant(partner)
    await world.save_card(partner, tenant, CARD_OK)
    invoice = await world.issue(partner, tenant, [("base_fee", 100 * USD)])
    path = f"/v1/invoices/{invoice.id}/refunds"
    results = await asyncio.gather(*(world.call("POST", path, partner, {"amount_micros": 60 * USD})
                                     for _ in range(3)))
    assert sorted(status for status, _ in results) == [201, 409, 409]
    [note] = [body for status, body in results if status == 201]
    assert note["number"] == "CN-000001"
    assert (await world.invoice(invoice.id)).credited_micros == 60 * USD


async def test_a_manually_paid_part_is_refunded_without_the_provider(world: World) -> None:
    partner = await world.partner()
    tenant = await world.tenant(partner)
    invoice = await world.issue(partner, tenant, [("base_fee", 30 * USD), ("minutes_local", 10 * USD)])
    await world.call("POST", f"/v1/invoices/{invoice.id}/payments", partner,
                     {"amount_micros": 40 * USD, "reference": "CASH-1"})
    status, note = await world.call("POST", f"/v1/invoices/{invoice.id}/refunds", partner,
                                    {"amount_micros": 20 * USD})
    assert status == 201 and note["number"] == "CN-000001" and note["usage_credit_micros"] == 5 * USD
    status, second = await world.call("POST", f"/v1/invoices/{invoice.id}/refunds", partner,
                                      {"amount_micros": 20 * USD, "credit_usage": False})
    assert status == 201 and second["number"] == "CN-000002" and second["usage_credit_micros"] == 0
    credits = await world.pool.fetch("SELECT amount_micros FROM tenant_invoice_items WHERE tenant_id = $1", tenant)
    assert [c["amount_micros"] for c in credits] == [5 * USD]
    parts = await world.pool.fetch("SELECT provider_refund_id FROM credit_note_allocations WHERE credit_note_id = $1",
                                   note["id"])
    assert [p["provider_refund_id"] for p in parts] == [None]


async def test_a_refund_stripe_did_not_answer_stays_pending_then_is_finished(world: World) -> None:
    partner = await world.partner()
    tenant = await world.tenant(partner)
    await world.save_card(partner, tenant, CARD_OK)
    invoice = await world.issue(partner, tenant, [("base_fee", 40 * USD)])
    # Stripe unreachable (nothing listens on port 1): the refund stays PENDING, numberless, and
    # still counts against what is refundable.
    unreachable = Resolver(PaymentsConfig(stripe_secret_key=world.stripe.secret_key,
                                          stripe_api_base="http://127.0.0.1:1"), world.resolver().box)
    with pytest.raises(Problem) as caught:
        await Refunds(world.pool, unreachable).refund(partner, invoice.id, RefundRequest(amount_micros=30 * USD))
    assert caught.value.status == 503
    [pending] = await store.credit_notes(world.pool, invoice.id)
    assert pending.status.value == "PENDING" and pending.number is None
    status, problem = await world.call("POST", f"/v1/invoices/{invoice.id}/refunds", partner,
                                       {"amount_micros": 20 * USD})
    assert status == 409 and problem["refundable_micros"] == 10 * USD
    # The plugin's sweeper finishes it: refunded at Stripe, numbered, applied.
    assert await Refunds(world.pool, world.resolver()).resume_stale(datetime.now(UTC) + timedelta(minutes=1)) >= 1
    [done] = await store.credit_notes(world.pool, invoice.id)
    assert done.status.value == "SUCCEEDED" and done.number == "CN-000001"
    assert (await world.invoice(invoice.id)).credited_micros == 30 * USD
