"""Pure limits policy: admission, reservations, cut-off, overflow, thresholds."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from cdr_ingest.rates import Rate, Rounding
from cdr_ingest.rating import billable_seconds
from controlplane.limits.agi import dial_options
from controlplane.limits.policy import (CAUSE_BUSY, CAUSE_FORBIDDEN, Crossing, Ledger, Limits, Pool, Reason, Usage,
                                        admit_inbound, alerts, count_cap_exceeded, decide,
                                        seconds_within, shortened)

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def rate(per_minute: int = 50_000, min_s: int = 60, inc: int = 6) -> Rate:
    return Rate("r", "1", per_minute, 0, min_s, inc, Rounding.HALF_UP, EPOCH)


def admit_all(limits: Limits, usage: Usage, n: int, r: Rate | None) -> tuple[Ledger, list[int]]:
    ledger, limits_s = Ledger(), []
    for i in range(n):
        d = decide(limits, True, usage, ledger, f"c{i}", r, 14400)
        if d.admit:
            assert d.hold is not None
            ledger.holds[d.hold.call_id] = d.hold
            limits_s.append(d.limit_s or 0)
    return ledger, limits_s


def test_two_minutes_left_gives_a_120_s_cut_off_then_refusal() -> None:
    limits = Limits(monthly_minutes=2)
    d = decide(limits, True, Usage(), Ledger(), "a", rate(), 14400)
    assert d.admit and d.limit_s == 120 and d.hold and d.hold.seconds == 120
    assert dial_options(d) == "L(119000)"
    ledger = Ledger({"a": d.hold})
    refused = decide(limits, True, Usage(), ledger, "b", rate(), 14400)
    assert not refused.admit and refused.reason is Reason.MINUTES and refused.cause == CAUSE_FORBIDDEN
    after = decide(limits, True, Usage(billable_s=120), Ledger(), "c", rate(), 14400)
    assert not after.admit and after.cause == CAUSE_FORBIDDEN


def test_suspended_is_403_and_spend_cap_limits_seconds() -> None:
    assert decide(Limits(), False, Usage(), Ledger(), "a", None, 60).cause == CAUSE_FORBIDDEN
    d = decide(Limits(monthly_spend_micros=100_000), True, Usage(), Ledger(), "a", rate(), 14400)
    assert d.admit and d.limit_s == 120  # $0.10 at $0.05/min
    broke = decide(Limits(monthly_spend_micros=100_000), True, Usage(spend_micros=60_000), Ledger(), "b", rate(), 14400)
    assert not broke.admit and broke.reason is Reason.SPEND  # $0.04 < the 60 s minimum


def test_no_caps_means_no_cut_off() -> None:
    d = decide(Limits(), True, Usage(), Ledger(), "a", rate(), 14400)
    assert d.admit and d.limit_s is None and dial_options(d) == ""


def test_concurrency_cap_and_overflow_into_two_way() -> None:
    limits = Limits(max_outbound=3)
    ledger, _ = admit_all(limits, Usage(), 4, None)
    assert len(ledger.holds) == 3
    fourth = decide(limits, True, Usage(), ledger, "x", None, 60)
    assert fourth.reason is Reason.CONCURRENT and fourth.cause == CAUSE_BUSY
    del ledger.holds["c0"]
    assert decide(limits, True, Usage(), ledger, "y", None, 60).admit
    both = Limits(max_outbound=1, max_inbound=1, max_two_way=1)
    ledger, _ = admit_all(both, Usage(), 3, None)
    assert [h.pool for h in ledger.holds.values()] == [Pool.OUTBOUND, Pool.TWO_WAY]
    assert not admit_inbound(both, ledger, "i1").admit is False  # inbound has its own channel
    ledger.holds["i1"] = admit_inbound(both, ledger, "i1").hold  # type: ignore[assignment]
    assert not admit_inbound(both, ledger, "i2").admit


@given(minutes=st.integers(0, 30), used=st.integers(0, 2000), n=st.integers(1, 40),
       inc=st.sampled_from([1, 6, 30, 60]), min_s=st.sampled_from([0, 6, 30, 60]))
def test_parallel_calls_never_reserve_more_than_the_allowance(minutes: int, used: int, n: int, inc: int,
                                                             min_s: int) -> None:
    """Kazoo's rule: every admitted call, run to its cut-off, bills within the cap."""
    r = rate(min_s=min_s, inc=inc)
    ledger, limits_s = admit_all(Limits(monthly_minutes=minutes), Usage(billable_s=used), n, r)
    billed = sum(billable_seconds(s, min_s, inc) for s in limits_s)
    assert used + billed <= max(minutes * 60, used)


@given(budget=st.integers(0, 10**7), n=st.integers(1, 30), per_minute=st.integers(1, 10**6))
def test_parallel_calls_never_spend_more_than_the_budget(budget: int, n: int, per_minute: int) -> None:
    from cdr_ingest.rating import price

    r = rate(per_minute=per_minute)
    ledger, limits_s = admit_all(Limits(monthly_spend_micros=budget), Usage(), n, r)
    assert sum(price(r, billable_seconds(s, 60, 6)) for s in limits_s) <= budget


@given(rem=st.integers(-10, 5000), inc=st.sampled_from([1, 6, 60]), min_s=st.sampled_from([0, 30, 60]))
def test_seconds_within_is_the_longest_fitting(rem: int, inc: int, min_s: int) -> None:
    r = rate(min_s=min_s, inc=inc)
    s = seconds_within(r, rem)
    assert billable_seconds(s, min_s, inc) <= max(rem, 0)
    assert s == 0 or billable_seconds(s + inc, min_s, inc) > rem


def test_lowered_cap_and_suspension_shorten_calls() -> None:
    limits = Limits(monthly_minutes=10)
    ledger, _ = admit_all(limits, Usage(), 2, rate())
    holds = [(h, 30) for h in ledger.holds.values()]
    assert shortened(limits, True, Usage(), holds) == {}
    lowered = Limits(monthly_minutes=2)
    cut = shortened(lowered, True, Usage(), holds)
    assert len(ledger.holds) == 1 and cut == {"c0": 90}  # c0 reserved all 600 s; now 120 s, 30 s gone
    assert shortened(limits, False, Usage(), holds) == {"c0": 0}


def test_alerts_and_count_caps() -> None:
    limits = Limits(monthly_minutes=10, max_extensions=5, alert_threshold_pct=80)
    got = alerts(limits, {"monthly_minutes": 480, "max_extensions": 4})
    assert [(a.cap, a.kind) for a in got] == [("monthly_minutes", Crossing.THRESHOLD),
                                             ("max_extensions", Crossing.THRESHOLD)]
    assert ("monthly_minutes", Crossing.CAP) in [(a.cap, a.kind) for a in alerts(limits, {"monthly_minutes": 600})]
    assert alerts(limits, {"monthly_minutes": 479}) == []
    assert count_cap_exceeded(2, 2) and not count_cap_exceeded(2, 1) and not count_cap_exceeded(None, 10**6)
    assert count_cap_exceeded(1, 3)  # lowered below usage: the next creation trips


def test_no_rate_under_a_money_or_minutes_cap_is_refused_fail_closed() -> None:
    for limits in (Limits(monthly_spend_micros=10**9), Limits(monthly_minutes=100),
                   Limits(monthly_spend_micros=10**9, monthly_minutes=100)):
        no_retail = decide(limits, True, Usage(), Ledger(), "a", None, 14400)
        assert (no_retail.admit, no_retail.reason, no_retail.cause) == (False, Reason.NO_RATE, CAUSE_FORBIDDEN)
        no_wholesale = decide(limits, True, Usage(), Ledger(), "b", rate(), 14400, partner_rated=False)
        assert (no_wholesale.admit, no_wholesale.reason) == (False, Reason.NO_RATE)
    # No cap measured by rating: nothing to fail closed about.
    assert decide(Limits(max_outbound=3), True, Usage(), Ledger(), "c", None, 14400).admit
    assert decide(Limits(), True, Usage(), Ledger(), "d", None, 14400, partner_rated=False).admit
