from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdr_ingest.rates import Rate, Rounding
from cdr_ingest.rating import Charge, affordable_seconds, billable_seconds, free_charge, price, rate_call

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def mk(
    per_minute: int,
    connect_fee: int = 0,
    min_s: int = 60,
    inc: int = 6,
    rounding: Rounding = Rounding.HALF_UP,
) -> Rate:
    return Rate("r", "1", per_minute, connect_fee, min_s, inc, rounding, T0)


@pytest.mark.parametrize(
    ("duration", "min_s", "inc", "expected"),
    [
        (61, 60, 6, 66),
        (61, 60, 60, 120),
        (5, 60, 6, 60),
        (7, 6, 6, 12),
        (61, 1, 1, 61),
        (0, 60, 6, 0),
        (0, 0, 1, 0),
        (1, 0, 1, 1),
        (60, 60, 6, 60),
        (66, 60, 6, 66),
        (67, 60, 6, 72),
        (1, 30, 60, 60),  # minimum below one increment: the increment wins
        (6, 6, 6, 6),
        (3600, 60, 6, 3600),
    ],
)
def test_billable_seconds_table(duration: int, min_s: int, inc: int, expected: int) -> None:
    assert billable_seconds(duration, min_s, inc) == expected


def test_billable_seconds_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        billable_seconds(-1, 60, 6)
    with pytest.raises(ValueError):
        billable_seconds(10, -1, 6)
    with pytest.raises(ValueError):
        billable_seconds(10, 60, 0)


def test_price_exact() -> None:
    # $0.020/min for 66 s = 0.022 -> 22,000 micro-units exactly
    assert price(mk(20_000), 66) == 22_000
    # $0.0125/min for 60 s + $0.01 connect
    assert price(mk(12_500, connect_fee=10_000), 60) == 22_500
    # $0.022/min for 6 s = 2,200
    assert price(mk(22_000, min_s=6), 6) == 2_200
    # nothing billable: no connect fee either
    assert price(mk(12_500, connect_fee=10_000), 0) == 0


@pytest.mark.parametrize(
    ("rounding", "per_minute", "billable", "expected"),
    [
        # 1 micro/min for 1 s = 1/60 micro
        (Rounding.UP, 1, 1, 1),
        (Rounding.DOWN, 1, 1, 0),
        (Rounding.HALF_UP, 1, 1, 0),
        # 1 micro/min for 30 s = exactly half a micro
        (Rounding.UP, 1, 30, 1),
        (Rounding.DOWN, 1, 30, 0),
        (Rounding.HALF_UP, 1, 30, 1),
        # 1 micro/min for 29 s: just under half
        (Rounding.HALF_UP, 1, 29, 0),
        # 12,345 micro/min for 7 s = 1,440.25
        (Rounding.UP, 12_345, 7, 1_441),
        (Rounding.DOWN, 12_345, 7, 1_440),
        (Rounding.HALF_UP, 12_345, 7, 1_440),
        # 12,345 micro/min for 11 s = 2,263.25; for 13 s = 2,674.75
        (Rounding.HALF_UP, 12_345, 13, 2_675),
        (Rounding.DOWN, 12_345, 13, 2_674),
        # exact divisions never round
        (Rounding.UP, 60, 1, 1),
        (Rounding.DOWN, 60, 1, 1),
    ],
)
def test_rounding_modes(rounding: Rounding, per_minute: int, billable: int, expected: int) -> None:
    assert price(mk(per_minute, min_s=0, inc=1, rounding=rounding), billable) == expected


def test_rate_call() -> None:
    r = mk(20_000, connect_fee=5_000)
    assert rate_call(r, 61) == Charge("r", 66, 27_000, r)
    assert rate_call(r, 0) == Charge("r", 0, 0, r)  # unanswered: no connect fee
    assert free_charge("free:internal", 42) == Charge("free:internal", 42, 0, None)


def test_affordable_seconds_examples() -> None:
    r = mk(60_000, min_s=60, inc=6)  # $0.06/min = 6,000 per 6 s
    assert affordable_seconds(r, 60_000) == 60
    assert affordable_seconds(r, 59_999) == 0  # the 60 s minimum does not fit
    assert affordable_seconds(r, 66_000) == 66
    assert affordable_seconds(r, 71_999) == 66
    assert affordable_seconds(mk(0), 0) is None
    assert affordable_seconds(mk(0, connect_fee=1), 0) == 0
    assert affordable_seconds(r, -5) == 0


rates_st = st.builds(
    mk,
    per_minute=st.integers(0, 5_000_000),
    connect_fee=st.integers(0, 100_000),
    min_s=st.integers(0, 120),
    inc=st.integers(1, 120),
    rounding=st.sampled_from(list(Rounding)),
)


@given(st.integers(1, 100_000), st.integers(0, 600), st.integers(1, 600))
def test_billable_at_least_duration(duration: int, min_s: int, inc: int) -> None:
    b = billable_seconds(duration, min_s, inc)
    assert b >= duration
    assert b >= min_s
    if b > min_s:
        assert b % inc == 0
        assert b - duration < inc


@given(st.integers(0, 100_000), st.integers(0, 100_000), st.integers(0, 600), st.integers(1, 600))
def test_billable_monotone(d1: int, d2: int, min_s: int, inc: int) -> None:
    lo, hi = sorted((d1, d2))
    assert billable_seconds(lo, min_s, inc) <= billable_seconds(hi, min_s, inc)


@given(rates_st, st.integers(0, 50_000), st.integers(0, 50_000))
def test_price_monotone_in_duration(rate: Rate, d1: int, d2: int) -> None:
    lo, hi = sorted((d1, d2))
    assert rate_call(rate, lo).amount <= rate_call(rate, hi).amount


@given(rates_st, st.integers(1, 50_000))
def test_price_bounds(rate: Rate, duration: int) -> None:
    c = rate_call(rate, duration)
    exact_num = rate.per_minute * c.billable_seconds
    assert c.amount - rate.connect_fee in (exact_num // 60, -(-exact_num // 60))


@given(rates_st, st.integers(0, 10_000_000))
def test_affordable_seconds_is_the_longest_that_fits(rate: Rate, budget: int) -> None:
    s = affordable_seconds(rate, budget)
    if s is None:
        assert rate.per_minute == 0
        return
    if s > 0:
        assert rate_call(rate, s).amount <= budget
    # one more second never fits
    assert rate_call(rate, s + 1).amount > budget
