"""Admission and the included minutes: a call inside the bundle costs the tenant nothing (its
record's retail is the marginal charge), so the spend cap neither refuses it nor holds money for
it; beyond the bundle the cap times the call by the same marginal price rating will charge."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from cdr_ingest.classify import CallClass
from cdr_ingest.pricing import (BillingProfile, included_left, marginal_affordable_seconds, marginal_charge,
                                marginal_price)
from cdr_ingest.rates import Rate, Rounding
from cdr_ingest.rating import affordable_seconds, billable_seconds, rate_call
from controlplane.limits.policy import Ledger, Limits, Reason, Usage, decide

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
CENT_A_MIN = 25_000  # $0.025/min, Flat Rate Starter's overage


def rate(per_minute: int = CENT_A_MIN, min_s: int = 6, inc: int = 6, connect: int = 0) -> Rate:
    return Rate("r", "1", per_minute, connect, min_s, inc, Rounding.HALF_UP, EPOCH)


def test_with_the_cap_spent_by_fees_a_call_inside_the_bundle_is_admitted_for_the_bundle_and_holds_nothing() -> None:
    spent = Usage(spend_micros=99_000_000)  # the base fee alone reaches the cap
    limits = Limits(monthly_spend_micros=99_000_000)
    refused = decide(limits, True, spent, Ledger(), "a", rate(), 14400)
    assert (refused.admit, refused.reason) == (False, Reason.SPEND)  # nothing included: refused as before
    admitted = decide(limits, True, spent, Ledger(), "b", rate(), 14400, included_left_s=300)
    assert admitted.admit and admitted.limit_s == 300  # cut where the bundle ends
    assert admitted.hold is not None and (admitted.hold.seconds, admitted.hold.micros) == (300, 0)


def test_beyond_the_bundle_the_cap_buys_the_rest_at_the_marginal_price() -> None:
    limits = Limits(monthly_spend_micros=50_000)  # two minutes at $0.025
    d = decide(limits, True, Usage(), Ledger(), "c", rate(), 14400, included_left_s=120)
    assert d.admit and d.limit_s == 240  # two free minutes, then two paid ones
    assert d.hold is not None and d.hold.micros == 50_000  # what the record will be charged at most
    without = decide(limits, True, Usage(), Ledger(), "d", rate(), 14400)
    assert without.limit_s == 120


def test_the_bundle_covers_local_and_toll_free_only_and_counts_what_is_used() -> None:
    profile = BillingProfile("p", CENT_A_MIN, included_minutes=500)
    assert included_left(profile, CallClass.LOCAL, 0) == 30_000
    assert included_left(profile, CallClass.TOLL_FREE, 29_000) == 1_000
    assert included_left(profile, CallClass.LOCAL, 31_000) == 0
    assert included_left(profile, CallClass.INTERNATIONAL, 0) == 0
    assert included_left(BillingProfile("q", CENT_A_MIN), CallClass.LOCAL, 0) == 0
    assert included_left(None, CallClass.LOCAL, 0) == 0


@given(per_minute=st.integers(0, 2_000_000), connect=st.integers(0, 100_000), min_s=st.sampled_from([0, 6, 30, 60]),
       inc=st.sampled_from([1, 6, 60]), budget=st.integers(-100_000, 5_000_000), left=st.integers(0, 40_000))
def test_the_cut_off_is_the_longest_call_whose_marginal_charge_fits(per_minute: int, connect: int, min_s: int,
                                                                     inc: int, budget: int, left: int) -> None:
    r = rate(per_minute, min_s, inc, connect)
    limit = marginal_affordable_seconds(r, budget, left)
    if limit is None:  # time never limits it: any length costs at most the connect fee
        assert per_minute == 0 and marginal_price(r, billable_seconds(10**6, min_s, inc), left) <= max(budget, 0)
        return
    if limit == 0:
        assert marginal_price(r, billable_seconds(inc, min_s, inc), left) > max(budget, 0)
        return
    assert marginal_price(r, billable_seconds(limit, min_s, inc), left) <= max(budget, 0)
    assert marginal_price(r, billable_seconds(limit + inc, min_s, inc), left) > max(budget, 0)


@given(per_minute=st.integers(0, 2_000_000), connect=st.integers(0, 100_000), min_s=st.sampled_from([0, 6, 30, 60]),
       inc=st.sampled_from([1, 6, 60]), budget=st.integers(-100_000, 10**13), left=st.integers(0, 40_000),
       cap=st.integers(1, 30_000))
def test_a_capped_search_cuts_every_call_where_the_full_search_would(per_minute: int, connect: int, min_s: int,
                                                                     inc: int, budget: int, left: int,
                                                                     cap: int) -> None:
    """Admission caps every call at its maximum length: the search stops there (one evaluation for
    a budget that covers it) and the call is cut exactly where the whole search would cut it."""
    r = rate(per_minute, min_s, inc, connect)
    full, capped = marginal_affordable_seconds(r, budget, left), marginal_affordable_seconds(r, budget, left, cap)
    assert (full is None) == (capped is None)
    if full is not None and capped is not None:
        assert min(full, cap) == min(capped, cap)
    whole, bounded = affordable_seconds(r, budget), affordable_seconds(r, budget, cap)
    assert (whole is None) == (bounded is None)
    if whole is not None and bounded is not None:
        assert min(whole, cap) == min(bounded, cap)


@given(answered=st.integers(0, 20_000), left=st.integers(0, 20_000), min_s=st.sampled_from([0, 6, 60]),
       inc=st.sampled_from([1, 6, 60]), connect=st.integers(0, 50_000))
def test_admission_prices_a_call_as_rating_charges_its_record(answered: int, left: int, min_s: int, inc: int,
                                                              connect: int) -> None:
    """One rule: the record's marginal charge (rating) is admission's ``marginal_price``."""
    r = rate(CENT_A_MIN, min_s, inc, connect)
    charge = rate_call(r, answered)
    assert marginal_charge(charge, left).amount == marginal_price(r, charge.billable_seconds, left)
