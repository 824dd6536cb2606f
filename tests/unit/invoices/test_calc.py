"""The pure invoicing math (controlplane/invoices/calc.py, compose.py) against the rules of docs/invoices.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from controlplane.invoices import calc
from controlplane.invoices.compose import Cycle, Pending, compose
from controlplane.invoices.models import BillingTerms, ClassSeconds, LineKind, Tax, UnitKind, UnitSpan

START, END = datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)  # 31 days
FLAT = BillingTerms("FLAT", 99_000_000, 5, 2, 500, 20_000_000, 4_000_000, 9_000_000, 25_000,
                    profile_name="Flat Rate Starter")
PAYG = BillingTerms("PAYG", 0, 0, 0, 0, 15_000_000, 3_000_000, 6_000_000, 25_000,
                    international_per_minute_micros=120_000)
TAX = Tax("Pulaski County", "US-AR-Pulaski", "8.5")


def _units(kind: UnitKind, n: int, start: datetime = START - timedelta(days=40), end: datetime | None = None,
           prefix: str = "u") -> list[UnitSpan]:
    return [UnitSpan(kind, f"{prefix}{kind}{i}", start, end) for i in range(n)]


def test_the_must_show_invoice_to_the_micro_unit() -> None:
    spans = (_units(UnitKind.EXTENSION, 7) + _units(UnitKind.DID_LOCAL, 2)
             + _units(UnitKind.DID_LOCAL, 1, start=START + timedelta(days=15, hours=9), prefix="late"))
    made = compose(Cycle(START, END, FLAT), "UTC", [ClassSeconds("local", 600 * 60), ClassSeconds("toll_free", 1200)],
                   spans, [], TAX)
    amounts = {line.kind: line.amount_micros for line in made.computed.lines}
    assert amounts == {"base_fee": 99_000_000, "extensions": 40_000_000, "dids_local": 2_060_000,
                       "minutes_included": 0, "minutes_local": 2_500_000, "minutes_toll_free": 500_000}
    assert (made.computed.subtotal_micros, made.computed.tax_micros, made.computed.total_micros) == (
        144_060_000, 12_250_000, 156_310_000)
    assert [line.quantity for line in made.computed.lines if line.kind == "dids_local"] == ["0.5161"]


@pytest.mark.parametrize(("micros", "cents"), [(2_064_516, 2_060_000), (2_065_000, 2_070_000),
                                                (2_064_999, 2_060_000), (-2_065_000, -2_070_000), (0, 0)])
def test_half_up_to_the_cent(micros: int, cents: int) -> None:
    assert calc.round_half_up_cents(micros) == cents
    assert calc.round_half_up_cents(Fraction(4_000_000 * 16, 31)) == 2_060_000


def test_a_unit_counts_each_local_day_it_was_present_and_removal_at_midnight_does_not_count() -> None:
    span = UnitSpan(UnitKind.EXTENSION, "e", START + timedelta(days=3, hours=23), START + timedelta(days=10))
    first, n = calc.period_days(START, END, "UTC")
    assert (first.day, n) == (1, 31)
    assert calc.excess_unit_days([span], (UnitKind.EXTENSION,), 0, first, n, START, END, "UTC") == {
        UnitKind.EXTENSION: 7}  # days 3..9
    # in New York the 23:00 UTC start is still the same local day, the period is in local days too
    ny_start, ny_end = datetime(2027, 1, 1, 5, tzinfo=UTC), datetime(2027, 2, 1, 5, tzinfo=UTC)
    assert calc.period_days(ny_start, ny_end, "America/New_York")[1] == 31
    # 23:30 UTC on Jan 3 is Jan 3 in New York too: days 3..9 local, then a grouped span counts twice
    grouped = UnitSpan(UnitKind.EXTENSION, "e", span.start, span.end, count=2)
    assert calc.excess_unit_days([grouped], (UnitKind.EXTENSION,), 1, first, n, START, END, "UTC") == {
        UnitKind.EXTENSION: 7}


def test_included_units_cover_each_day_so_a_swap_costs_nothing() -> None:
    # one of two included numbers released on day 10, another added the same day: never more than 2
    spans = [UnitSpan(UnitKind.DID_LOCAL, "a", START - timedelta(days=5), None),
             UnitSpan(UnitKind.DID_LOCAL, "b", START - timedelta(days=5), START + timedelta(days=10)),
             UnitSpan(UnitKind.DID_LOCAL, "c", START + timedelta(days=10, hours=1), None)]
    lines = calc.usage_lines(FLAT, spans, [], START, END, "UTC")
    assert [line.kind for line in lines] == ["base_fee"]


def test_included_dids_cover_standard_numbers_before_toll_free() -> None:
    spans = _units(UnitKind.DID_LOCAL, 2) + _units(UnitKind.DID_TOLL_FREE, 1)
    lines = calc.usage_lines(FLAT, spans, [], START, END, "UTC")
    assert [(line.kind, line.quantity, line.amount_micros) for line in lines[1:]] == [
        ("dids_toll_free", "1", 9_000_000)]


def test_payg_bills_every_unit_and_every_minute_at_the_class_rate() -> None:
    lines = calc.usage_lines(PAYG, _units(UnitKind.EXTENSION, 2) + _units(UnitKind.DID_LOCAL, 1),
                             [ClassSeconds("local", 61), ClassSeconds("international", 90),
                              ClassSeconds("internal", 600)], START, END, "UTC")
    assert [(line.kind, line.quantity, line.amount_micros) for line in lines] == [
        ("extensions", "2", 30_000_000), ("dids_local", "1", 3_000_000),
        # 61 s x 0.025/60 = 0.025416.. -> 0.03; 1.5 min x 0.12 = 0.18
        ("minutes_local", "1.0167", 30_000), ("minutes_international", "1.5", 180_000)]


def test_included_minutes_are_used_local_first_then_the_rest_is_billed() -> None:
    terms = BillingTerms("FLAT", 0, 0, 0, 10, 0, 0, 0, 25_000, toll_free_per_minute_micros=50_000)
    lines = calc.minute_lines(terms, [ClassSeconds("toll_free", 300), ClassSeconds("local", 480)])
    assert [(line.kind, line.quantity, line.amount_micros) for line in lines] == [
        ("minutes_included", "10", 0), ("minutes_toll_free", "3", 150_000)]


def test_credits_reduce_the_subtotal_to_zero_at_most_and_the_rest_is_carried() -> None:
    made = compose(Cycle(START, END, PAYG), "UTC", [], _units(UnitKind.EXTENSION, 1),
                   [Pending(LineKind.SETUP, "Number setup", 1_000_000), Pending(LineKind.CREDIT, "Refund", 20_000_000)],
                   TAX)
    assert made.computed.subtotal_micros == 0 and made.computed.tax_micros == 0
    assert made.computed.credit_applied_micros == 16_000_000 and made.credit_left_micros == 4_000_000
    small = compose(Cycle(START, END, PAYG), "UTC", [], _units(UnitKind.EXTENSION, 1),
                    [Pending(LineKind.CREDIT, "Refund", 5_000_000)], TAX)
    assert (small.computed.subtotal_micros, small.computed.tax_micros, small.computed.total_micros) == (
        10_000_000, 850_000, 10_850_000)
    assert small.computed.lines[-1].amount_micros == -5_000_000


@pytest.mark.parametrize(("num", "den", "text"), [(62, 31, "2"), (16, 31, "0.5161"), (1, 2, "0.5"),
                                                  (61, 60, "1.0167"), (3, 8, "0.375"), (1, 30000, "0.0000")])
def test_quantities_are_exact_or_shown_to_four_places(num: int, den: int, text: str) -> None:
    assert calc.quantity_text(num, den) == text


@pytest.mark.parametrize("text", ["abc", "-1", "100.5", "8.12345", "NaN", "Infinity"])
def test_a_bad_rate_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        calc.parse_rate_percent(text)


def test_tax_rate_is_exact() -> None:
    # 0.1 + 0.2 style traps: 7.0625 % of 100.00 is 7.0625 -> 7.06; 8.25 % of 10.10 = 0.83325 -> 0.83
    assert calc.tax_micros(100_000_000, Tax("x", "x", "7.0625")) == 7_060_000
    assert calc.tax_micros(10_100_000, Tax("x", "x", "8.25")) == 830_000
    assert calc.tax_micros(10_000_000, None) == 0


def test_terms_hash_once_and_alike_for_equal_terms() -> None:
    from dataclasses import replace
    same, other = replace(FLAT), replace(FLAT, base_fee_micros=98_000_000)
    assert same is not FLAT and same == FLAT and hash(same) == hash(FLAT) == hash(FLAT)
    assert other != FLAT and {FLAT: 1}.get(other) is None and {FLAT: 1}[same] == 1


def test_the_job_s_two_steps_are_compose() -> None:
    from controlplane.invoices.compose import finish, fixed_lines
    cycle = Cycle(START, END, FLAT)
    spans = _units(UnitKind.EXTENSION, 7) + _units(UnitKind.DID_LOCAL, 3, START + timedelta(days=15))
    seconds = [ClassSeconds("local", 620 * 60), ClassSeconds("international", 90)]
    for pending in ([], [Pending(LineKind.SETUP, "Setup", 25_000_000), Pending(LineKind.CREDIT, "Credit", 500_000_000)]):
        assert finish(FLAT, fixed_lines(cycle, "UTC", spans), seconds, pending, TAX) == compose(
            cycle, "UTC", seconds, spans, pending, TAX)
