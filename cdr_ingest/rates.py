"""Rates and effective-dated longest-prefix rate decks.

A rate change applies to calls that START at or after its effective_from
(seed 003, Terms of Service §6.5: rates change prospectively; what was
already billed stands). The deck is a dict keyed by prefix string, probed
from the longest prefix length present down to the shortest. Measured in
CPython it is on par with a nested-dict trie (bench/bench_rating.py prints
both) and far simpler.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

from cdr_ingest.money import parse_micros

__all__ = ["Rounding", "Rate", "RateDeck", "load_deck_csv", "CSV_COLUMNS", "parse_utc"]


class Rounding(StrEnum):
    """How a fractional micro-unit is resolved (the only rounding we do)."""

    UP = "up"
    DOWN = "down"
    HALF_UP = "half_up"


@dataclass(frozen=True, slots=True)
class Rate:
    """One price for one prefix over one period. Money in micro-units."""

    rate_id: str
    prefix: str
    per_minute: int
    connect_fee: int
    min_seconds: int
    increment_seconds: int
    rounding: Rounding
    effective_from: datetime
    effective_to: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rate_id, str) or not self.rate_id:
            raise ValueError("rate_id must be a non-empty string")
        # A prefix of "" would be a silent catch-all; make it explicit ("1", "4"...).
        p = self.prefix
        if not isinstance(p, str) or not p or not p.isascii() or not p.isdigit():
            raise ValueError(f"prefix must be ASCII digits, got {p!r}")
        # type() is int, not isinstance: bool is an int and is never a price.
        if type(self.per_minute) is not int or self.per_minute < 0:
            raise ValueError(f"per_minute must be a non-negative int, got {self.per_minute!r}")
        if type(self.connect_fee) is not int or self.connect_fee < 0:
            raise ValueError(f"connect_fee must be a non-negative int, got {self.connect_fee!r}")
        if type(self.min_seconds) is not int or self.min_seconds < 0:
            raise ValueError(f"min_seconds must be a non-negative int, got {self.min_seconds!r}")
        if type(self.increment_seconds) is not int or self.increment_seconds < 1:
            raise ValueError(f"increment_seconds must be an int >= 1, got {self.increment_seconds!r}")
        if type(self.rounding) is not Rounding:
            object.__setattr__(self, "rounding", Rounding(self.rounding))
        object.__setattr__(self, "effective_from", _as_utc(self.effective_from, "effective_from"))
        if self.effective_to is not None:
            to = _as_utc(self.effective_to, "effective_to")
            if to <= self.effective_from:
                raise ValueError("effective_to must be after effective_from")
            object.__setattr__(self, "effective_to", to)

    def applies_at(self, at: datetime) -> bool:
        """True if a call starting at `at` is priced by this rate (ignoring prefix)."""
        return self.effective_from <= at and (self.effective_to is None or at < self.effective_to)


def _as_utc(v: object, name: str) -> datetime:
    if not isinstance(v, datetime) or v.tzinfo is None or v.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return v if v.tzinfo is UTC else v.astimezone(UTC)


class RateDeck:
    """Immutable longest-prefix, effective-dated lookup over a set of rates.

    When a prefix has several versions, the newest one that has started
    wins; older versions implicitly end when a newer one starts. If no
    version of the longest matching prefix is in force at the call's start
    (e.g. the prefix only starts tomorrow), the next shorter prefix is used.
    """

    __slots__ = ("_table", "_lengths", "_count")

    def __init__(self, rates: Iterable[Rate]) -> None:
        # One tuple per prefix, newest version first, and no other containers:
        # at 100k prefixes the cyclic GC, not our code, dominates build time.
        table: dict[str, tuple[Rate, ...]] = {}
        multi: dict[str, list[Rate]] = {}
        count = 0
        for r in rates:
            if type(r) is not Rate:
                raise TypeError(f"RateDeck takes Rate objects, got {type(r).__name__}")
            prev = table.get(r.prefix)
            if prev is None:
                table[r.prefix] = (r,)
            else:
                multi.setdefault(r.prefix, list(prev)).append(r)
            count += 1
        for prefix, versions in multi.items():
            versions.sort(key=lambda v: v.effective_from, reverse=True)
            for newer, older in zip(versions, versions[1:]):
                if newer.effective_from == older.effective_from:
                    raise ValueError(
                        f"prefix {prefix!r} has two rates effective from the same instant: "
                        f"{older.rate_id!r} and {newer.rate_id!r}"
                    )
            table[prefix] = tuple(versions)
        self._table = table
        self._lengths = tuple(sorted({len(p) for p in table}, reverse=True))
        self._count = count

    def __len__(self) -> int:
        return self._count

    @property
    def prefix_count(self) -> int:
        return len(self._table)

    @property
    def max_prefix_len(self) -> int:
        return self._lengths[0] if self._lengths else 0

    def find(self, number_digits: str, at: datetime) -> Rate | None:
        """Rate for a call to number_digits (E.164 digits, '+' tolerated) starting at `at`."""
        if at.tzinfo is not UTC:
            at = _as_utc(at, "at")
        if number_digits[:1] == "+":
            number_digits = number_digits[1:]
        table = self._table
        n = len(number_digits)
        for length in self._lengths:
            if length > n:
                continue
            versions = table.get(number_digits[:length])
            if versions is not None:
                # Rate datetimes are all UTC (same tzinfo object), so these
                # comparisons skip utcoffset() calls: several times cheaper.
                for rate in versions:
                    if rate.effective_from <= at:
                        end = rate.effective_to
                        if end is None or at < end:
                            return rate
                        break  # newest started version has ended: gap, try shorter
        return None


CSV_COLUMNS: tuple[str, ...] = (
    "rate_id",
    "prefix",
    "per_minute",
    "connect_fee",
    "min_seconds",
    "increment_seconds",
    "rounding",
    "effective_from",
    "effective_to",
)
_REQUIRED = frozenset(CSV_COLUMNS[:-1])


def parse_utc(text: str) -> datetime:
    """ISO 8601 instant with an offset ('Z' ok); a bare date means 00:00 UTC.

    A datetime without an offset is refused: guessing a zone would move
    a rate change by hours.
    """
    s = text.strip()
    if len(s) == 10:
        return datetime.combine(date.fromisoformat(s), datetime.min.time(), tzinfo=UTC)
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        raise ValueError(f"datetime {text!r} has no UTC offset")
    return dt.astimezone(UTC)


class _Memo:
    """Rate decks repeat the same prices and dates; parse each text once."""

    def __init__(self) -> None:
        self.money: dict[str, int] = {}
        self.ints: dict[str, int] = {}
        self.times: dict[str, datetime] = {}
        self.roundings: dict[str, Rounding] = {}

    def rounding(self, s: str) -> Rounding:
        v = self.roundings.get(s)
        if v is None:
            v = self.roundings[s] = Rounding(s.strip().lower())
        return v

    def micros(self, s: str) -> int:
        v = self.money.get(s)
        if v is None:
            v = self.money[s] = parse_micros(s)
        return v

    def int_(self, s: str) -> int:
        v = self.ints.get(s)
        if v is None:
            t = s.strip()
            if not t.isascii() or not t.isdigit():
                raise ValueError(f"not a non-negative integer: {s!r}")
            v = self.ints[s] = int(t)
        return v

    def time(self, s: str) -> datetime:
        v = self.times.get(s)
        if v is None:
            v = self.times[s] = parse_utc(s)
        return v


def load_deck_csv(source: str | Iterable[str]) -> RateDeck:
    """Build a RateDeck from CSV text (or lines) with a header row.

    Columns: rate_id,prefix,per_minute,connect_fee,min_seconds,
    increment_seconds,rounding,effective_from[,effective_to], in any order;
    money as decimal strings. Blank lines are skipped. Any bad value raises
    ValueError naming the line number and column, so an operator can fix
    the file instead of guessing.
    """
    lines = io.StringIO(source) if isinstance(source, str) else source
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError("line 1: empty rate deck, expected a header row") from None
    except csv.Error as exc:
        raise ValueError(f"line 1: {exc}") from None
    names = [h.strip().lower() for h in header]
    if names and names[0].startswith("\ufeff"):
        names[0] = names[0][1:]
    for name in names:
        if name not in CSV_COLUMNS:
            raise ValueError(f"line 1, column {name!r}: unknown column (expected {', '.join(CSV_COLUMNS)})")
    if len(set(names)) != len(names):
        raise ValueError("line 1: duplicate column in header")
    missing = [c for c in CSV_COLUMNS if c in _REQUIRED and c not in names]
    if missing:
        raise ValueError(f"line 1, column {missing[0]!r}: required column missing")
    idx = {name: i for i, name in enumerate(names)}
    i_to = idx.get("effective_to")
    memo = _Memo()
    rates: list[Rate] = []
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(names):
                raise ValueError(f"line {line}: expected {len(names)} fields, got {len(row)}")
            rates.append(_row_to_rate(row, idx, i_to, memo, line))
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: {exc}") from None
    try:
        return RateDeck(rates)
    except ValueError as exc:
        raise ValueError(f"rate deck: {exc}") from None


def _row_to_rate(row: list[str], idx: dict[str, int], i_to: int | None, memo: _Memo, line: int) -> Rate:
    column = "rate_id"
    try:
        rate_id = row[idx["rate_id"]].strip()
        if not rate_id:
            raise ValueError("empty")
        column = "prefix"
        prefix = row[idx["prefix"]].strip()
        if not prefix or not prefix.isascii() or not prefix.isdigit():
            raise ValueError(f"prefix must be digits, got {prefix!r}")
        column = "per_minute"
        per_minute = memo.micros(row[idx["per_minute"]])
        column = "connect_fee"
        connect_fee = memo.micros(row[idx["connect_fee"]])
        column = "min_seconds"
        min_seconds = memo.int_(row[idx["min_seconds"]])
        column = "increment_seconds"
        increment = memo.int_(row[idx["increment_seconds"]])
        if increment < 1:
            raise ValueError("must be >= 1")
        column = "rounding"
        rounding = memo.rounding(row[idx["rounding"]])
        column = "effective_from"
        eff_from = memo.time(row[idx["effective_from"]])
        column = "effective_to"
        to_text = row[i_to].strip() if i_to is not None else ""
        eff_to = memo.time(to_text) if to_text else None
        if eff_to is not None and eff_to <= eff_from:
            raise ValueError("must be after effective_from")
    except ValueError as exc:
        raise ValueError(f"line {line}, column {column!r}: {exc}") from None
    return Rate(rate_id, prefix, per_minute, connect_fee, min_seconds, increment, rounding, eff_from, eff_to)
