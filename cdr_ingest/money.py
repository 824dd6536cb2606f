"""Money as integer micro-units (1 USD = 1_000_000).

Sub-cent per-minute rates ($0.0125) and per-second pricing need more than
cents; integers keep sums exact and associative, which floats do not.
Parsing goes through Decimal, never float.
"""

from __future__ import annotations

import re
from decimal import Decimal

__all__ = ["MICROS", "MAX_MICROS", "parse_micros", "format_micros", "to_micros"]

MICROS = 1_000_000
# Fits a PostgreSQL bigint; anything larger is a typo, not a price.
MAX_MICROS = 2**63 - 1

# ASCII only: '\d' with re.ASCII rejects non-ASCII digits Decimal would accept.
_DECIMAL_RE = re.compile(r"([+-]?)(\d+)(?:\.(\d*))?|([+-]?)\.(\d+)", re.ASCII)
_MAX_PLACES = 6


def parse_micros(text: str, *, allow_negative: bool = False) -> int:
    """Exact micro-units of a decimal string such as "0.0125" -> 12_500.

    Rejects (ValueError) exponents, NaN/Infinity, thousands separators,
    currency signs, more than 6 decimals (that would silently lose money)
    and, unless allow_negative, negative amounts: prices are never
    negative, only ledger adjustments are.
    """
    if not isinstance(text, str):
        raise ValueError(f"amount must be a string, got {type(text).__name__}")
    s = text.strip()
    m = _DECIMAL_RE.fullmatch(s)
    if m is None:
        raise ValueError(f"not a decimal amount: {text!r}")
    places = m.group(3) if m.group(2) is not None else m.group(5)
    if places is not None and len(places) > _MAX_PLACES:
        raise ValueError(f"more than {_MAX_PLACES} decimal places: {text!r}")
    value = int(Decimal(s) * MICROS)  # exact: at most 6 places, scaled by 10**6
    if value < 0 and not allow_negative:
        raise ValueError(f"negative amount not allowed: {text!r}")
    if abs(value) > MAX_MICROS:
        raise ValueError(f"amount out of range: {text!r}")
    return value


def to_micros(value: Decimal | int | str) -> int:
    """Micro-units of a Decimal/int/str amount; floats are refused on purpose."""
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError("floats are not accepted for money; pass a str or Decimal")
    if isinstance(value, int):
        return value * MICROS
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite amount: {value}")
        scaled = value * MICROS
        if scaled != scaled.to_integral_value():
            raise ValueError(f"more than {_MAX_PLACES} decimal places: {value}")
        return int(scaled)
    return parse_micros(value, allow_negative=True)


def format_micros(micros: int, *, min_places: int = 2) -> str:
    """Decimal string of micro-units that round-trips through parse_micros.

    Trailing zeros are trimmed down to min_places (2 by default, so dollars
    read naturally: 1_500_000 -> "1.50", 12_500 -> "0.0125").
    """
    if isinstance(micros, bool) or not isinstance(micros, int):
        raise TypeError(f"micro-units must be an int, got {type(micros).__name__}")
    if not 0 <= min_places <= _MAX_PLACES:
        raise ValueError(f"min_places must be 0..{_MAX_PLACES}")
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS)
    frac_s = f"{frac:06d}".rstrip("0")
    if len(frac_s) < min_places:
        frac_s = frac_s.ljust(min_places, "0")
    return f"{sign}{whole}.{frac_s}" if frac_s else f"{sign}{whole}"
