from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cdr_ingest.rates import Rate, RateDeck, Rounding, load_deck_csv, parse_utc

T0 = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def rate(rate_id: str, prefix: str, per_minute: int = 10_000, **kw: object) -> Rate:
    fields: dict[str, object] = dict(
        connect_fee=0, min_seconds=60, increment_seconds=6, rounding=Rounding.HALF_UP, effective_from=T0
    )
    fields.update(kw)
    return Rate(rate_id, prefix, per_minute, **fields)  # type: ignore[arg-type]


def test_longest_prefix_match() -> None:
    deck = RateDeck([rate("us", "1"), rate("ca-416", "1416"), rate("uk", "44"), rate("uk-mob", "447")])
    assert deck.find("14165550123", NOW).rate_id == "ca-416"  # type: ignore[union-attr]
    assert deck.find("+14165550123", NOW).rate_id == "ca-416"  # type: ignore[union-attr]
    assert deck.find("14155550123", NOW).rate_id == "us"  # type: ignore[union-attr]
    assert deck.find("447700900123", NOW).rate_id == "uk-mob"  # type: ignore[union-attr]
    assert deck.find("442079460123", NOW).rate_id == "uk"  # type: ignore[union-attr]
    assert deck.find("33142685300", NOW) is None
    assert deck.find("", NOW) is None
    assert deck.find("14", NOW).rate_id == "us"  # type: ignore[union-attr]
    assert deck.find("1416", NOW).rate_id == "ca-416"  # type: ignore[union-attr]
    assert len(deck) == 4 and deck.prefix_count == 4 and deck.max_prefix_len == 4


def test_effective_dating() -> None:
    tomorrow = NOW + timedelta(days=1)
    deck = RateDeck(
        [
            rate("old", "44", 10_000),
            rate("new", "44", 12_000, effective_from=tomorrow),
        ]
    )
    # a rate effective tomorrow does not apply today
    assert deck.find("442079460123", NOW).rate_id == "old"  # type: ignore[union-attr]
    # a call starting exactly at effective_from takes the new rate
    assert deck.find("442079460123", tomorrow).rate_id == "new"  # type: ignore[union-attr]
    just_before = tomorrow - timedelta(microseconds=1)
    assert deck.find("442079460123", just_before).rate_id == "old"  # type: ignore[union-attr]
    # before any version started: nothing
    assert deck.find("442079460123", T0 - timedelta(seconds=1)) is None


def test_future_longer_prefix_falls_back_to_shorter() -> None:
    tomorrow = NOW + timedelta(days=1)
    deck = RateDeck([rate("uk", "44"), rate("uk-mob", "447", effective_from=tomorrow)])
    assert deck.find("447700900123", NOW).rate_id == "uk"  # type: ignore[union-attr]
    assert deck.find("447700900123", tomorrow).rate_id == "uk-mob"  # type: ignore[union-attr]


def test_effective_to_is_exclusive_and_closes_prefix() -> None:
    end = NOW + timedelta(hours=1)
    deck = RateDeck([rate("uk", "44"), rate("uk-mob", "447", effective_to=end)])
    assert deck.find("447700900123", NOW).rate_id == "uk-mob"  # type: ignore[union-attr]
    assert deck.find("447700900123", end).rate_id == "uk"  # type: ignore[union-attr]


def test_newer_version_supersedes_older_even_after_it_ends() -> None:
    promo_start, promo_end = NOW, NOW + timedelta(days=30)
    promo = rate("promo", "1212", effective_from=promo_start, effective_to=promo_end)
    deck = RateDeck([rate("base", "1"), rate("std", "1212"), promo])
    before = promo_start - timedelta(seconds=1)
    assert deck.find("12125550123", before).rate_id == "std"  # type: ignore[union-attr]
    assert deck.find("12125550123", promo_start).rate_id == "promo"  # type: ignore[union-attr]
    # documented rule: the newest started version governs; once it ends the prefix is closed
    assert deck.find("12125550123", promo_end).rate_id == "base"  # type: ignore[union-attr]


def test_find_accepts_other_zones_and_rejects_naive() -> None:
    deck = RateDeck([rate("old", "44"), rate("new", "44", effective_from=NOW)])
    plus2 = timezone(timedelta(hours=2))
    assert deck.find("44", NOW.astimezone(plus2)).rate_id == "new"  # type: ignore[union-attr]
    before = (NOW - timedelta(seconds=1)).astimezone(plus2)
    assert deck.find("44", before).rate_id == "old"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        deck.find("44", datetime(2025, 6, 1))


def test_duplicate_version_rejected() -> None:
    with pytest.raises(ValueError, match="same instant"):
        RateDeck([rate("a", "44"), rate("b", "44")])


@pytest.mark.parametrize(
    "kw",
    [
        {"prefix": ""},
        {"prefix": "44a"},
        {"prefix": "\u0664\u0664"},
        {"per_minute": -1},
        {"per_minute": True},
        {"connect_fee": -1},
        {"min_seconds": -1},
        {"increment_seconds": 0},
        {"rounding": "sideways"},
        {"effective_from": datetime(2025, 1, 1)},
        {"effective_to": T0},
    ],
)
def test_rate_validation(kw: dict[str, object]) -> None:
    fields: dict[str, object] = dict(
        rate_id="r",
        prefix="44",
        per_minute=1,
        connect_fee=0,
        min_seconds=0,
        increment_seconds=1,
        rounding=Rounding.UP,
        effective_from=T0,
    )
    fields.update(kw)
    with pytest.raises(ValueError):
        Rate(**fields)  # type: ignore[arg-type]


def test_rate_normalises_to_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    r = rate("r", "1", effective_from=datetime(2025, 1, 1, 2, 0, tzinfo=plus2), rounding="up")
    assert r.effective_from == T0 and r.effective_from.tzinfo is UTC
    assert r.rounding is Rounding.UP


HEADER = (
    "rate_id,prefix,per_minute,connect_fee,min_seconds,increment_seconds,"
    "rounding,effective_from,effective_to\n"
)


def test_csv_loader() -> None:
    text = (
        HEADER
        + "uk,44,0.0125,0.01,60,6,half_up,2025-01-01,\n"
        + "\n"
        + "uk-mob,447,0.085,0,1,1,UP,2025-01-01T00:00:00Z,2026-01-01T00:00:00+00:00\n"
        + "uk-new,44,0.0130,0.01,60,6,down,2025-07-01T02:00:00+02:00,\n"
    )
    deck = load_deck_csv(text)
    r = deck.find("442079460123", NOW)
    assert r is not None and r.rate_id == "uk" and r.per_minute == 12_500 and r.connect_fee == 10_000
    assert r.min_seconds == 60 and r.increment_seconds == 6 and r.rounding is Rounding.HALF_UP
    m = deck.find("447700900123", NOW)
    assert m is not None and m.rounding is Rounding.UP and m.effective_to == datetime(2026, 1, 1, tzinfo=UTC)
    n = deck.find("442079460123", datetime(2025, 7, 1, tzinfo=UTC))
    assert n is not None and n.rate_id == "uk-new" and n.rounding is Rounding.DOWN
    # lines and reordered columns without effective_to
    lines = [
        "prefix,rate_id,per_minute,connect_fee,min_seconds,increment_seconds,rounding,effective_from",
        "1,us,0.01,0,6,6,up,2025-01-01",
    ]
    assert load_deck_csv(lines).find("14155550123", NOW).rate_id == "us"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("row", "line", "column"),
    [
        (",44,0.01,0,60,6,up,2025-01-01,", 3, "rate_id"),
        ("r,4x4,0.01,0,60,6,up,2025-01-01,", 3, "prefix"),
        ("r,44,abc,0,60,6,up,2025-01-01,", 3, "per_minute"),
        ("r,44,0.0000001,0,60,6,up,2025-01-01,", 3, "per_minute"),
        ("r,44,-0.01,0,60,6,up,2025-01-01,", 3, "per_minute"),
        ("r,44,0.01,x,60,6,up,2025-01-01,", 3, "connect_fee"),
        ("r,44,0.01,0,-1,6,up,2025-01-01,", 3, "min_seconds"),
        ("r,44,0.01,0,60,0,up,2025-01-01,", 3, "increment_seconds"),
        ("r,44,0.01,0,60,6,nearest,2025-01-01,", 3, "rounding"),
        ("r,44,0.01,0,60,6,up,yesterday,", 3, "effective_from"),
        ("r,44,0.01,0,60,6,up,2025-01-01T00:00:00,", 3, "effective_from"),
        ("r,44,0.01,0,60,6,up,2025-01-01,2024-01-01", 3, "effective_to"),
    ],
)
def test_csv_errors_name_line_and_column(row: str, line: int, column: str) -> None:
    text = HEADER + "ok,1,0.01,0,60,6,up,2025-01-01,\n" + row + "\n"
    with pytest.raises(ValueError) as exc:
        load_deck_csv(text)
    assert f"line {line}, column '{column}'" in str(exc.value)


def test_csv_structural_errors() -> None:
    with pytest.raises(ValueError, match="line 1"):
        load_deck_csv("")
    with pytest.raises(ValueError, match="line 1, column 'colour'"):
        load_deck_csv("rate_id,prefix,colour\n")
    with pytest.raises(ValueError, match="line 1, column 'per_minute': required"):
        load_deck_csv("rate_id,prefix\n")
    with pytest.raises(ValueError, match="line 3: expected 9 fields, got 3"):
        load_deck_csv(HEADER + "\n" + "a,b,c\n")
    with pytest.raises(ValueError, match="same instant"):
        load_deck_csv(HEADER + "a,44,0.01,0,60,6,up,2025-01-01,\nb,44,0.02,0,60,6,up,2025-01-01,\n")


def test_csv_bom_header() -> None:
    deck = load_deck_csv("\ufeff" + HEADER + "a,44,0.01,0,60,6,up,2025-01-01,\n")
    assert len(deck) == 1


def test_parse_utc() -> None:
    assert parse_utc("2025-01-01") == T0
    assert parse_utc("2025-01-01T01:00:00+01:00") == T0
    assert parse_utc("2025-01-01T00:00:00Z").tzinfo is UTC
    with pytest.raises(ValueError, match="offset"):
        parse_utc("2025-01-01T00:00:00")
