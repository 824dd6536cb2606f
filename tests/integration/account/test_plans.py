"""Plan changes and the operator's prices against PostgreSQL and localstripe, over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from account_world import World

from cdr_ingest.classify import CallClass, Direction
from cdr_ingest.tiers import Tier, wholesale_rate
from controlplane.calls.billing import BillingContexts
from controlplane.account.cycle import prorate
from controlplane.account.jobs import run_cycle
from controlplane.account.models import PlanChangeRequest
from controlplane.payments.charges import idempotency_key
from controlplane.shared.problems import Problem


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def active_partner(world: World, tier: str = "STARTER") -> str:
    pid = await world.partner(tier)
    await world.card(pid)
    r = await world.call("POST", "/v1/account/activation", partner=pid)
    assert r.status == 201, r.body
    return pid


async def test_upgrade_preview_changes_nothing_confirm_charges_the_prorated_difference(world: World) -> None:
    pid = await active_partner(world)
    preview = await world.call("POST", "/v1/account/plan-changes", partner=pid,
                               json={"tier": "BUSINESS", "preview": True})
    assert preview.status == 200, preview.body
    expected = prorate(999_000_000 - 249_000_000, datetime.now(UTC))
    assert preview.body | {"effective_at": None} == {
        "current_tier": "STARTER", "tier": "BUSINESS", "kind": "upgrade", "effective_at": None,
        "new_monthly_fee_micros": 999_000_000, "prorated_charge_micros": expected, "charge_now_micros": expected,
        "applied": False, "invoice_id": None, "currency": "USD"}
    assert await world.pool.fetchval("SELECT tier FROM partners WHERE id = $1", pid) == "STARTER"
    done = await world.call("POST", "/v1/account/plan-changes", partner=pid, json={"tier": "BUSINESS"})
    assert done.status == 201 and done.body["applied"] and done.body["invoice_id"]
    assert await world.pool.fetchval("SELECT tier FROM partners WHERE id = $1", pid) == "BUSINESS"
    reference = f"upgrade:{datetime.now(UTC):%Y-%m}:STARTER:BUSINESS"
    [intent] = world.stripe.intents_for(idempotency_key(pid, reference))
    assert intent.amount == expected // 10_000
    invoice = await world.call("GET", f"/v1/account/invoices/{done.body['invoice_id']}", partner=pid)
    assert invoice.body["purpose"] == "upgrade" and invoice.body["amount_micros"] == expected
    [updated] = await world.events(pid, "subscription.updated")
    assert (updated["previous_tier"], updated["tier"], updated["change"]) == ("STARTER", "BUSINESS", "upgrade")


async def test_downgrade_waits_for_the_next_cycle_and_can_be_cancelled(world: World) -> None:
    pid = await active_partner(world, "BUSINESS")
    r = await world.call("POST", "/v1/account/plan-changes", partner=pid, json={"tier": "PROFESSIONAL"})
    assert r.status == 201 and r.body["kind"] == "downgrade" and r.body["charge_now_micros"] == 0
    account = (await world.call("GET", "/v1/account", partner=pid)).body
    assert (account["tier"], account["pending_tier"]) == ("BUSINESS", "PROFESSIONAL")
    assert account["pending_tier_effective_at"] == r.body["effective_at"]
    cancel = await world.call("POST", "/v1/account/plan-changes", partner=pid, json={"tier": "BUSINESS"})
    assert cancel.status == 201 and cancel.body["kind"] == "cancel_downgrade"
    assert (await world.call("GET", "/v1/account", partner=pid)).body["pending_tier"] is None
    same = await world.call("POST", "/v1/account/plan-changes", partner=pid, json={"tier": "BUSINESS"})
    assert same.status == 422 and same.body["errors"][0]["field"] == "tier"
    # scheduled again, it applies when the cycle job runs in the next cycle
    r = await world.call("POST", "/v1/account/plan-changes", partner=pid, json={"tier": "STARTER"})
    effective = datetime.fromisoformat(r.body["effective_at"])
    await run_cycle(world.pool, world.provider, effective - timedelta(minutes=1))
    assert await world.pool.fetchval("SELECT tier FROM partners WHERE id = $1", pid) == "BUSINESS"
    await run_cycle(world.pool, world.provider, effective + timedelta(minutes=1))
    assert await world.pool.fetchval("SELECT tier FROM partners WHERE id = $1", pid) == "STARTER"
    # the new cycle's platform fee is the lower tier's
    fee = await world.pool.fetchval("SELECT amount_micros FROM payment_charges WHERE partner_id = $1"
                                    " AND reference = $2", pid, f"sub:{effective:%Y-%m}")
    assert fee == 249_000_000


async def test_enterprise_and_bad_input_are_refused_and_change_nothing(world: World) -> None:
    pid = await active_partner(world)
    for body, status, field in (({"tier": "ENTERPRISE"}, 409, None), ({"tier": "GOLD"}, 422, "tier"),
                                ({}, 422, "tier"), ({"tier": "BUSINESS", "preview": "yes"}, 422, "preview"),
                                ({"tier": "BUSINESS", "extra": 1}, 422, "extra")):
        r = await world.call("POST", "/v1/account/plan-changes", partner=pid, json=body)
        assert r.status == status, (body, r.body)
        if field:
            assert r.body["errors"][0]["field"] == field, r.body
    assert await world.pool.fetchval("SELECT tier FROM partners WHERE id = $1", pid) == "STARTER"


async def test_operator_price_changes_are_prospective_and_notify_the_tier(world: World) -> None:
    pid = await active_partner(world, "PROFESSIONAL")
    now = datetime.now(UTC)
    soon = await world.call("POST", "/v1/tier-prices", platform=True, json={
        "tier": "PROFESSIONAL", "effective_from": (now + timedelta(days=3)).isoformat(),
        "monthly_fee_micros": 599_005_000, "per_extension_micros": 2_500_000, "did_local_monthly_micros": 1_500_000,
        "did_toll_free_monthly_micros": 2_250_000, "local_per_minute_micros": 17_000,
        "toll_free_per_minute_micros": 20_000})
    assert soon.status == 422
    assert {e["field"] for e in soon.body["errors"]} == {"effective_from", "monthly_fee_micros"}
    portal = await world.call("POST", "/v1/tier-prices", partner=pid, json={})
    assert portal.status == 403
    effective = (now + timedelta(days=40)).replace(hour=0, minute=0, second=0, microsecond=0)
    body = {"tier": "PROFESSIONAL", "effective_from": effective.isoformat(), "monthly_fee_micros": 599_000_000,
            "max_extensions": 1, "per_extension_micros": 2_500_000, "did_local_monthly_micros": 1_500_000,
            "did_toll_free_monthly_micros": 2_250_000, "local_per_minute_micros": 17_000,
            "toll_free_per_minute_micros": 20_000}
    r = await world.call("POST", "/v1/tier-prices", platform=True, json=body)
    assert r.status == 201, r.body
    assert r.body["partners_notified"] >= 1
    [scheduled] = await world.events(pid, "subscription.price_change_scheduled")
    assert scheduled["tier"] == "PROFESSIONAL" and scheduled["prices"]["monthly_fee_micros"] == 599_000_000
    account = (await world.call("GET", "/v1/account", partner=pid)).body
    assert account["prices"]["monthly_fee_micros"] == 549_000_000  # still the old price today
    assert account["scheduled_prices"]["monthly_fee_micros"] == 599_000_000
    # calls are rated and admitted with the partner's schedule: the new price from the date on
    tenant = await world.call("POST", "/v1/tenants", partner=pid, json={"name": "T", "billing_email": "b@x.co"})
    async with world.pool.acquire() as conn:
        billing = await BillingContexts()(conn, tenant.body["id"])
    assert billing is not None
    rate = wholesale_rate(Tier.PROFESSIONAL, CallClass.LOCAL, Direction.OUTBOUND, effective, billing.schedule)
    before = wholesale_rate(Tier.PROFESSIONAL, CallClass.LOCAL, Direction.OUTBOUND, now, billing.schedule)
    assert rate is not None and before is not None and (before.per_minute, rate.per_minute) == (16_000, 17_000)
    listed = (await world.call("GET", "/v1/tier-prices", platform=True)).body["items"]
    [pro] = [t for t in listed if t["tier"] == "PROFESSIONAL"]
    assert [v["monthly_fee_micros"] for v in pro["versions"]] == [549_000_000, 599_000_000]
    # after the date, the lower cap (1 extension) refuses a downgrade to it for a partner with 2
    big = await active_partner(world, "BUSINESS")
    tenant = await world.call("POST", "/v1/tenants", partner=big, json={"name": "T", "billing_email": "b@x.co"})
    for n in ("201", "202"):
        assert (await world.call("POST", f"/v1/tenants/{tenant.body['id']}/extensions", partner=big,
                                 json={"number": n, "display_name": n})).status == 201
    try:
        await world.services.change_plan(big, PlanChangeRequest(tier=Tier.PROFESSIONAL),
                                         now=effective + timedelta(days=1))
        raise AssertionError("the downgrade over the cap was accepted")
    except Problem as refused:
        assert refused.status == 409 and refused.code == "over_extension_cap"
        assert refused.extra == {"cap": 1, "current": 2}
    # before the date the old cap (1,000) applies: accepted as a preview
    ok = await world.services.change_plan(big, PlanChangeRequest(tier=Tier.PROFESSIONAL, preview=True))
    assert ok.kind == "downgrade" and not ok.applied



async def test_bad_price_input_names_every_field_and_changes_nothing(world: World) -> None:
    pid = await world.partner("BUSINESS")
    good = {"monthly_fee_micros": 4_500_000_000, "per_extension_micros": 900_000, "did_local_monthly_micros": 800_000,
            "did_toll_free_monthly_micros": 1_500_000, "local_per_minute_micros": 9_000,
            "toll_free_per_minute_micros": 12_000}
    for bad, field in (({"monthly_fee_micros": -1}, "monthly_fee_micros"),
                       ({"per_extension_micros": 1.5}, "per_extension_micros"),
                       ({"monthly_fee_micros": 4_500_000_001}, "monthly_fee_micros"),  # not whole cents
                       ({"did_local_monthly_micros": "0.80"}, "did_local_monthly_micros"),
                       ({"max_extensions": -3}, "max_extensions"),
                       ({"effective_from": "2027-01-01T00:00:00"}, "effective_from")):
        r = await world.call("PUT", f"/v1/partners/{pid}/enterprise-prices", platform=True, json={**good, **bad})
        assert r.status == 422, (bad, r.body)
        assert field in {e["field"] for e in r.body["errors"]}, (bad, r.body)
    several = await world.call("PUT", f"/v1/partners/{pid}/enterprise-prices", platform=True,
                               json={**good, "monthly_fee_micros": -1, "per_extension_micros": -2})
    assert several.status == 422
    assert {"monthly_fee_micros", "per_extension_micros"} <= {e["field"] for e in several.body["errors"]}
    assert await world.pool.fetchval("SELECT count(*) FROM account_enterprise_prices WHERE partner_id = $1", pid) == 0
    ok = await world.call("PUT", f"/v1/partners/{pid}/enterprise-prices", platform=True, json=good)
    assert ok.status == 200, ok.body
    missing = await world.call("PUT", "/v1/partners/ptr_nobody/enterprise-prices", platform=True, json=good)
    assert missing.status == 404
