"""Billing profiles, pure: the period rule, marginal pricing within included minutes, the
rate card a tenant is priced by, the fees the spend cap counts, and the cross-field checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from cdr_ingest.classify import CallClass, Direction
from cdr_ingest.cycles import anchor_day, period_of
from cdr_ingest.pricing import BillingProfile, PriceNote, price_call
from cdr_ingest.records import PricingSpan, TenantBilling
from cdr_ingest.tiers import Tier
from controlplane.profiles.models import PricingModel, ProfileBody, ProfileTerms, RateOverrides
from controlplane.profiles.rules import check_profile, period_fees, rate_card

T0 = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def terms(**changes: object) -> ProfileTerms:
    """Flat Rate Starter (Appendix A): $99, 5 extensions, 2 DIDs, 500 minutes; $20, $4, $0.025 over."""
    base = ProfileTerms(
        profile_id="bpr_flat", partner_id="ptr", name="Starter", model=PricingModel.FLAT,
        base_fee_micros=99_000_000, included_extensions=5, included_dids=2, included_minutes=500,
        extension_micros=20_000_000, did_local_micros=4_000_000, did_toll_free_micros=8_000_000,
        per_minute_micros=25_000, local_per_minute_micros=None, toll_free_per_minute_micros=None,
        international_per_minute_micros=None, connect_fee_micros=0, min_seconds=60, increment_seconds=60,
        rounding="half_up", charge_inbound=True, trial_days=None, then_profile_id=None)
    return replace(base, **changes)  # type: ignore[arg-type]




# ---------------------------------------------------------------- the period rule

def test_payg_is_the_calendar_month_and_flat_the_anniversary_in_the_tenant_timezone() -> None:
    created = datetime(2026, 1, 17, 3, 0, tzinfo=UTC)  # the 16th, 22:00, in New York
    assert anchor_day(False, created, "America/New_York") == 1
    assert anchor_day(True, created, "America/New_York") == 16
    assert anchor_day(True, created, "UTC") == 17
    assert anchor_day(True, created, "UTC", override=5) == 5  # limits' explicit anchor wins
    p = period_of(T0, "America/New_York", [(created, 16)])
    assert p.start == datetime(2026, 2, 16, 5, 0, tzinfo=UTC) and p.end == datetime(2026, 3, 16, 4, 0, tzinfo=UTC)
    assert p.key == date(2026, 2, 16)
    payg = period_of(T0, "America/New_York", [(created, 1)])
    assert payg.start == datetime(2026, 3, 1, 5, 0, tzinfo=UTC) and payg.key == date(2026, 3, 1)


def test_an_anniversary_past_the_month_end_falls_on_its_last_day() -> None:
    created = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    p = period_of(datetime(2026, 2, 28, 12, 0, tzinfo=UTC), "UTC", [(created, 31)])
    assert p.start == datetime(2026, 2, 28, tzinfo=UTC) and p.end == datetime(2026, 3, 31, tzinfo=UTC)


def test_a_trial_end_or_a_change_of_model_cuts_a_short_period() -> None:
    created = datetime(2026, 1, 17, 10, 0, tzinfo=UTC)
    trial_end = created + timedelta(days=30)  # 2026-02-16 10:00
    anchors = [(created, 17), (trial_end, 17)]
    during = period_of(trial_end - timedelta(hours=1), "UTC", anchors)
    assert during.start == created and during.end == trial_end
    after = period_of(trial_end + timedelta(hours=1), "UTC", anchors)
    assert after.start == trial_end and after.end == datetime(2026, 2, 17, tzinfo=UTC)
    # PAYG (1st) -> Flat at the next period start: a stub from the 1st to the anniversary
    switch = datetime(2026, 3, 1, tzinfo=UTC)
    stub = period_of(datetime(2026, 3, 5, tzinfo=UTC), "UTC", [(created, 1), (switch, 17)])
    assert (stub.start, stub.end) == (switch, datetime(2026, 3, 17, tzinfo=UTC))


# ---------------------------------------------------------------- marginal pricing

def call(profile: BillingProfile, answered_s: int, left_s: int, cls: CallClass = CallClass.LOCAL,
         direction: Direction = Direction.OUTBOUND) -> int:
    price = price_call(call_class=cls, direction=direction, answered_s=answered_s, start=T0, tier=Tier.BUSINESS,
                       profile=profile, number_digits="15015550123", included_left_s=left_s)
    assert price.retail is not None
    return price.retail.amount


def test_a_call_within_the_included_minutes_costs_nothing_and_beyond_them_the_overage() -> None:
    card = BillingProfile("flat", per_minute=25_000, connect_fee=10_000, min_seconds=60, increment_seconds=60,
                          included_minutes=500)
    assert call(card, 125, left_s=500 * 60) == 0  # 3 minutes of 500: free, no connect fee
    assert call(card, 125, left_s=0) == 10_000 + 3 * 25_000  # the bundle is gone: full price
    # 2 minutes left of a 3-minute call: 1 minute over, and the call's connect fee
    assert call(card, 125, left_s=120) == 10_000 + 25_000
    price = price_call(call_class=CallClass.TOLL_FREE, direction=Direction.INBOUND, answered_s=61, start=T0,
                       tier=Tier.BUSINESS, profile=card, included_left_s=600)
    assert price.retail is not None and price.retail.amount == 0 and price.retail.billable_seconds == 120
    assert PriceNote.INCLUDED_MINUTES in price.notes


def test_international_is_never_in_the_included_minutes() -> None:
    card = BillingProfile("flat", per_minute=25_000, international_per_minute=150_000, min_seconds=60,
                          increment_seconds=60, included_minutes=500)
    assert call(card, 60, left_s=30_000, cls=CallClass.INTERNATIONAL) == 150_000


def test_the_recorder_consumes_the_bundle_in_order_and_the_sum_is_the_overage() -> None:
    """620 billable minutes with 500 included at $0.025: the calls' retail sums to 120 x 0.025."""
    card = BillingProfile("flat", per_minute=25_000, min_seconds=60, increment_seconds=60, included_minutes=500)
    used, total = 0, 0
    for minutes in [7] * 80 + [60]:  # 620 minutes, the bundle ends inside a call
        amount = call(card, minutes * 60, left_s=max(0, 500 * 60 - used))
        used += minutes * 60
        total += amount
    assert used == 620 * 60 and total == 120 * 25_000 == 3_000_000


def test_the_call_is_priced_by_the_profile_in_force_at_its_start() -> None:
    switch = datetime(2026, 4, 1, tzinfo=UTC)
    billing = TenantBilling("t", "p", Tier.BUSINESS, None, spans=(
        PricingSpan(datetime(2026, 1, 1, tzinfo=UTC), BillingProfile("payg", per_minute=25_000), 1),
        PricingSpan(switch, BillingProfile("flat", per_minute=20_000, included_minutes=500), 17)))
    assert billing.profile_at(switch - timedelta(seconds=1)).profile_id == "payg"  # type: ignore[union-attr]
    assert billing.profile_at(switch).profile_id == "flat"  # type: ignore[union-attr]
    assert billing.profile_at(datetime(2025, 12, 1, tzinfo=UTC)).profile_id == "payg"  # type: ignore[union-attr]
    assert billing.cycle(switch + timedelta(days=3)) == date(2026, 4, 1)  # the stub to the 17th
    assert billing.cycle(datetime(2026, 4, 20, tzinfo=UTC)) == date(2026, 4, 17)


# ---------------------------------------------------------------- rate card, fees, checks

def test_overrides_replace_only_the_rates_they_set() -> None:
    flat = terms(toll_free_per_minute_micros=40_000)
    card = rate_card(flat, RateOverrides(per_minute_micros=18_000, min_seconds=6), "bpr_flat")
    assert card is not None
    assert (card.per_minute, card.toll_free_per_minute, card.min_seconds, card.increment_seconds) == (
        18_000, 40_000, 6, 60)
    assert card.included_minutes == 500
    legacy = rate_card(None, RateOverrides(per_minute_micros=50_000), "t")  # no profile: the old row
    assert legacy is not None and legacy.per_minute == 50_000 and legacy.min_seconds == 6
    assert legacy.included_minutes == 0
    assert rate_card(None, None, "t") is None


def test_period_fees_bill_the_units_above_the_included_ones() -> None:
    # The tenant: 7 extensions, 3 DIDs -> 99 + 2 x 20 + 1 x 4 (a full period of each)
    assert period_fees(terms(), 7, 3, 0) == 99_000_000 + 40_000_000 + 4_000_000
    assert period_fees(terms(), 3, 1, 0) == 99_000_000
    # included DIDs cover the local ones first; the toll-free one over them pays its rate
    assert period_fees(terms(), 5, 2, 1) == 99_000_000 + 8_000_000
    payg = terms(base_fee_micros=0, included_extensions=0, included_dids=0, extension_micros=15_000_000,
                    did_local_micros=3_000_000)
    assert period_fees(payg, 2, 1, 0) == 33_000_000


def test_the_checks_name_every_field_at_fault() -> None:
    body = ProfileBody(name=" ", model=PricingModel.FLAT, trial_days=30, overdue_after_days=10,
                       suspend_after_days=5)
    fields = {e.field for e in check_profile(body, None, set())}
    assert fields == {"name", "then_profile_id", "suspend_after_days"}
    body = ProfileBody(name="Trial", model=PricingModel.PAYG, trial_days=30, then_profile_id="bpr_x")
    assert [e.field for e in check_profile(body, "bpr_x", {"bpr_x"})] == ["then_profile_id"]  # not itself
    assert [e.field for e in check_profile(body, None, {"bpr_y"})] == ["then_profile_id"]  # unknown
    assert check_profile(body, None, {"bpr_x"}) == []


def test_the_body_types_refuse_negative_money_and_unknown_fields() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"name": "x", "model": "FLAT", "base_fee_micros": -1}, ProfileBody)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"name": "x", "model": "MONTHLY"}, ProfileBody)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"name": "x", "model": "FLAT", "surprise": 1}, ProfileBody)
