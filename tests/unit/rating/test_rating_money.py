from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdr_ingest.money import MAX_MICROS, format_micros, parse_micros, to_micros


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("0.0125", 12_500),
        ("0.020", 20_000),
        ("0.022", 22_000),
        ("249", 249_000_000),
        ("1.75", 1_750_000),
        ("0.000001", 1),
        ("0", 0),
        ("0.", 0),
        (".5", 500_000),
        (" 3.00 ", 3_000_000),
        ("+2", 2_000_000),
        ("-0", 0),
    ],
)
def test_parse(text: str, micros: int) -> None:
    assert parse_micros(text) == micros


@pytest.mark.parametrize(
    "text",
    [
        *("", " ", "abc", "1e3", "NaN", "Infinity", "1,000.00", "$1"),
        *("0.0000001", "1.2.3", "--1", "\u0661.5", "1 000"),
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_micros(text)


def test_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_micros("-0.01")
    assert parse_micros("-0.01", allow_negative=True) == -10_000


def test_range_and_type() -> None:
    with pytest.raises(ValueError, match="range"):
        parse_micros("10000000000000")
    with pytest.raises(ValueError):
        parse_micros(0.5)  # type: ignore[arg-type]


def test_format() -> None:
    assert format_micros(12_500) == "0.0125"
    assert format_micros(1_500_000) == "1.50"
    assert format_micros(249_000_000) == "249.00"
    assert format_micros(1) == "0.000001"
    assert format_micros(0) == "0.00"
    assert format_micros(-10_000) == "-0.01"
    assert format_micros(249_000_000, min_places=0) == "249"
    with pytest.raises(TypeError):
        format_micros(1.5)  # type: ignore[arg-type]


def test_to_micros() -> None:
    assert to_micros(Decimal("0.0125")) == 12_500
    assert to_micros(3) == 3_000_000
    assert to_micros("-1.5") == -1_500_000
    with pytest.raises(TypeError):
        to_micros(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        to_micros(Decimal("0.0000001"))


@given(st.integers(min_value=-MAX_MICROS, max_value=MAX_MICROS), st.integers(min_value=0, max_value=6))
def test_round_trip(micros: int, places: int) -> None:
    assert parse_micros(format_micros(micros, min_places=places), allow_negative=True) == micros
