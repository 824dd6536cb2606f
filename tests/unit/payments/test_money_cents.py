"""to_cents refuses what round_cents must round first; round_cents is half up to a cent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.shared.money import MICROS_PER_CENT, round_cents, to_cents


@pytest.mark.parametrize("micros, cents", [(0, 0), (10_000, 1), (12_340_000, 1234), (-50_000, -5)])
def test_whole_cents_convert(micros: int, cents: int) -> None:
    assert to_cents(micros) == cents


@pytest.mark.parametrize("micros", [1, 9_999, 10_001, 1_234_567, -1])
def test_fractions_of_a_cent_are_refused_not_rounded(micros: int) -> None:
    with pytest.raises(ValueError, match="round_cents"):
        to_cents(micros)


@pytest.mark.parametrize("value", [1.0, "10000", True])
def test_only_ints_are_money(value: object) -> None:
    with pytest.raises(TypeError):
        to_cents(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        round_cents(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("micros, rounded", [
    (0, 0), (4_999, 0), (5_000, 10_000), (1_234_999, 1_230_000), (1_235_000, 1_240_000),
    (1_230_000, 1_230_000), (-4_999, 0), (-5_000, -10_000), (-1_235_000, -1_240_000),
])
def test_round_cents_is_half_up_away_from_zero(micros: int, rounded: int) -> None:
    assert round_cents(micros) == rounded


@given(st.integers(min_value=-10**15, max_value=10**15))
def test_round_cents_is_the_nearest_cent_and_to_cents_takes_it(micros: int) -> None:
    rounded = round_cents(micros)
    assert rounded % MICROS_PER_CENT == 0
    assert abs(rounded - micros) <= MICROS_PER_CENT // 2
    assert to_cents(rounded) * MICROS_PER_CENT == rounded
    assert round_cents(rounded) == rounded
