"""The account's pure rules: proration, which units a cycle charges and how much, plan changes, trial."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cdr_ingest.tiers import DEFAULT_SCHEDULE, Tier, TierPrices
from controlplane.account import plans, prices
from controlplane.account.cycle import (Unit, UnitKind, cycle_of, days_left, next_cycle_start, prorate,
                                        unit_charges)
from provisioning.model import PartnerStatus

STARTER = DEFAULT_SCHEDULE.prices_at(Tier.STARTER, datetime.now(UTC))
BUSINESS = DEFAULT_SCHEDULE.prices_at(Tier.BUSINESS, datetime.now(UTC))
PROFESSIONAL = DEFAULT_SCHEDULE.prices_at(Tier.PROFESSIONAL, datetime.now(UTC))
assert STARTER and BUSINESS and PROFESSIONAL


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def starter(_: datetime) -> TierPrices | None:
    return STARTER


def test_days_left_counts_today_in_utc() -> None:
    assert days_left(at("2026-12-01T00:00")) == 31
    assert days_left(at("2026-12-31T23:59")) == 1
    assert days_left(at("2027-02-15T12:00")) == 14
    # 23:30 in New York on Nov 30 is Dec 1 in UTC: the UTC day counts
    ny = datetime(2026, 11, 30, 23, 30, tzinfo=UTC) + timedelta(hours=5)
    assert cycle_of(ny) == "2026-12" and days_left(ny) == 31


@pytest.mark.parametrize(("fee", "day", "expected"), [
    (249_000_000, "2026-12-01", 249_000_000),  # the whole month
    (249_000_000, "2026-12-17", 120_480_000),  # 249 x 15/31 = 120.4838... -> 120.48
    (549_000_000, "2027-02-15", 274_500_000),  # 549 x 14/28 = 274.50 exactly
    (3_000_000, "2026-12-31", 100_000),  # 3.00 / 31 = 0.0967... -> 0.10
    (1_250_000, "2026-11-20", 460_000),  # 1.25 x 11/30 = 0.458333 -> 0.46
    (10_000, "2026-12-30", 0),  # 0.01 x 2/31 = 0.000645 -> 0.00
])
def test_prorate_rounds_half_up_to_a_whole_cent(fee: int, day: str, expected: int) -> None:
    assert prorate(fee, at(day)) == expected
    assert prorate(fee, at(day)) % 10_000 == 0


def test_prorate_half_cent_goes_up() -> None:
    # 0.31 x 1/31 = 0.01 exactly; 0.155 x 31/31 stays; 0.155 -> x with a half cent: 1.55 / 10 days of 30...
    assert prorate(150_000, at("2026-11-30")) == 10_000  # 0.15 / 30 = 0.005 -> 0.01 (half up)
    assert prorate(149_999, at("2026-11-30")) == 0  # 0.0049999... -> 0.00


def test_units_at_cycle_start_pay_full_added_mid_cycle_prorated_from_the_day() -> None:
    activated = at("2026-10-10")
    units = [Unit("ext_old", UnitKind.EXTENSION, at("2026-11-03"), "ten_1"),
             Unit("did_old", UnitKind.DID_LOCAL, at("2026-09-01"), None),  # unassigned: still charged
             Unit("ext_new", UnitKind.EXTENSION, at("2026-12-17T15:00"), "ten_1"),
             Unit("did_tf", UnitKind.DID_TOLL_FREE, at("2026-12-17T08:00"), "ten_1")]
    charges = {c.unit.unit_id: c for c in unit_charges(units, now=at("2026-12-20"), billing_from=activated,
                                                       prices_at=starter)}
    assert charges["ext_old"].amount_micros == 3_000_000 and not charges["ext_old"].prorated
    assert charges["did_old"].amount_micros == 1_750_000
    assert charges["ext_new"].amount_micros == 1_450_000  # 3.00 x 15/31 = 1.4516 -> 1.45
    assert charges["did_tf"].amount_micros == 1_210_000  # 2.50 x 15/31 = 1.2096 -> 1.21
    assert charges["ext_old"].reference == "fee:2026-12:ext:ext_old"
    assert charges["did_tf"].reference == "fee:2026-12:did:did_tf"
    assert charges["did_tf"].entry_kind == "monthly_did_toll_free"
    assert charges["did_old"].entry_kind == "monthly_did_local"
    assert charges["ext_new"].entry_kind == "monthly_extension"


def test_trial_time_is_not_billed_units_count_from_activation() -> None:
    units = [Unit("ext_1", UnitKind.EXTENSION, at("2026-12-02"), "ten_1")]
    [charge] = unit_charges(units, now=at("2026-12-17T10:00"), billing_from=at("2026-12-17T09:00"),
                            prices_at=starter)
    assert charge.prorated and charge.amount_micros == 1_450_000
    # next cycle: the full fee, its own reference
    [later] = unit_charges(units, now=at("2027-01-01T00:01"), billing_from=at("2026-12-17T09:00"),
                           prices_at=starter)
    assert later.amount_micros == 3_000_000 and later.reference == "fee:2027-01:ext:ext_1"


def test_a_released_unit_is_simply_absent_next_cycle_and_custom_prices_charge_nothing() -> None:
    assert unit_charges([], now=at("2027-01-01"), billing_from=at("2026-01-01"), prices_at=starter) == []
    enterprise = DEFAULT_SCHEDULE.prices_at(Tier.ENTERPRISE, at("2026-12-01"))
    units = [Unit("ext_1", UnitKind.EXTENSION, at("2026-01-01"), None)]
    assert unit_charges(units, now=at("2026-12-05"), billing_from=at("2026-01-01"),
                        prices_at=lambda _: enterprise) == []


def test_rate_changes_are_prospective_for_units() -> None:
    raised = TierPrices(Tier.STARTER, at("2027-01-01"), 249_000_000, 300, 4_000_000, 1_750_000, 2_500_000,
                        20_000, 22_000)
    built = prices.schedule([raised])
    units = [Unit("ext_1", UnitKind.EXTENSION, at("2026-06-01"), None)]
    [dec] = unit_charges(units, now=at("2026-12-31"), billing_from=at("2026-01-01"),
                         prices_at=prices.prices_at(built, Tier.STARTER))
    [jan] = unit_charges(units, now=at("2027-01-01"), billing_from=at("2026-01-01"),
                         prices_at=prices.prices_at(built, Tier.STARTER))
    assert (dec.amount_micros, jan.amount_micros) == (3_000_000, 4_000_000)


def change(status: PartnerStatus, current: TierPrices, target: TierPrices, *, pending: Tier | None = None,
           extensions: int = 0, now: str = "2026-12-17") -> plans.PlanChange:
    return plans.plan_change(status=status, current=current.tier, pending=pending, target=target.tier,
                             current_prices=current, target_prices=target, extensions=extensions, now=at(now))


def test_upgrade_is_now_and_charges_the_prorated_difference() -> None:
    c = change(PartnerStatus.ACTIVE, STARTER, BUSINESS)
    assert c.kind is plans.ChangeKind.UPGRADE and c.effective_at == at("2026-12-17")
    assert c.new_monthly_fee_micros == 999_000_000
    assert c.charge_now_micros == c.prorated_charge_micros == 362_900_000  # 750 x 15/31 = 362.90
    assert change(PartnerStatus.TRIAL, STARTER, BUSINESS).charge_now_micros == 0


def test_downgrade_waits_for_the_cycle_end_and_respects_the_lower_cap() -> None:
    c = change(PartnerStatus.ACTIVE, BUSINESS, STARTER, extensions=300)
    assert c.kind is plans.ChangeKind.DOWNGRADE and c.effective_at == at("2027-01-01") and c.charge_now_micros == 0
    with pytest.raises(plans.PlanRefusal) as refused:
        change(PartnerStatus.ACTIVE, BUSINESS, STARTER, extensions=301)
    assert refused.value.code == "over_extension_cap" and refused.value.extra == {"cap": 300, "current": 301}
    assert change(PartnerStatus.TRIAL, BUSINESS, PROFESSIONAL).effective_at == at("2026-12-17")
    assert next_cycle_start(at("2026-12-31T23:59")) == at("2027-01-01")


def test_same_tier_cancels_a_pending_downgrade_or_is_refused() -> None:
    assert change(PartnerStatus.ACTIVE, BUSINESS, BUSINESS, pending=Tier.STARTER).kind is \
        plans.ChangeKind.CANCEL_DOWNGRADE
    with pytest.raises(plans.PlanRefusal) as refused:
        change(PartnerStatus.ACTIVE, BUSINESS, BUSINESS)
    assert refused.value.code == "same_plan"


def test_enterprise_is_the_platforms_and_a_suspended_account_activates_first() -> None:
    enterprise = TierPrices(Tier.ENTERPRISE, at("2026-01-01"), 5_000_000_000, None, 1, 1, 1, 1, 1)
    for current, target in ((STARTER, enterprise), (enterprise, STARTER)):
        with pytest.raises(plans.PlanRefusal) as refused:
            change(PartnerStatus.ACTIVE, current, target)
        assert refused.value.code == "enterprise_contact_sales"
    with pytest.raises(plans.PlanRefusal):
        change(PartnerStatus.SUSPENDED, STARTER, BUSINESS)


def test_pending_downgrade_applies_only_if_it_still_fits() -> None:
    assert plans.downgrade_due(Tier.STARTER, STARTER, 300)
    assert not plans.downgrade_due(Tier.STARTER, STARTER, 301)
    assert not plans.downgrade_due(None, None, 0)


def test_trial_rules() -> None:
    created = at("2026-12-01T10:00")
    ends = plans.trial_ends_at(created)
    assert ends == at("2026-12-15T10:00")
    assert not plans.trial_expired(PartnerStatus.TRIAL, ends, at("2026-12-15T09:59"))
    assert plans.trial_expired(PartnerStatus.TRIAL, ends, at("2026-12-15T10:00"))
    assert not plans.trial_expired(PartnerStatus.ACTIVE, ends, at("2027-01-01"))
    assert plans.can_activate(PartnerStatus.SUSPENDED) and plans.can_activate(PartnerStatus.TRIAL)
    assert not plans.can_activate(PartnerStatus.ACTIVE)


def test_price_changes_need_notice_and_whole_cent_fees() -> None:
    now = at("2026-12-01")
    p = TierPrices(Tier.STARTER, at("2026-12-20"), 249_005_000, 300, 1, 1, 1, 1, 1)
    fields = {f for f, _ in prices.price_change_errors(p, now)}
    assert fields == {"effective_from", "monthly_fee_micros"}
    ok = TierPrices(Tier.STARTER, at("2027-01-01"), 259_000_000, 300, 1, 1, 1, 1, 1)
    assert prices.price_change_errors(ok, now) == []
    ent = TierPrices(Tier.ENTERPRISE, at("2027-01-01"), 259_000_000, 300, 1, 1, 1, 1, 1)
    assert {f for f, _ in prices.price_change_errors(ent, now)} == {"tier"}


def test_an_enterprise_contract_prices_its_partner_from_its_date() -> None:
    contract = TierPrices(Tier.ENTERPRISE, at("2027-01-01"), 4_500_000_000, None, 900_000, 800_000, 1_500_000,
                          9_000, 12_000)
    built = prices.schedule([], [contract])
    assert built.prices_at(Tier.ENTERPRISE, at("2026-12-31")).monthly_fee is None  # type: ignore[union-attr]
    units = [Unit("ext_1", UnitKind.EXTENSION, at("2026-06-01"), None)]
    [jan] = unit_charges(units, now=at("2027-01-05"), billing_from=at("2026-01-01"),
                         prices_at=prices.prices_at(built, Tier.ENTERPRISE))
    assert jan.amount_micros == 900_000
    assert prices.schedule([]).prices_at(Tier.STARTER, at("2027-01-01")) == STARTER
