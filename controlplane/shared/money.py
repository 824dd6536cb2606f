"""The platform's one currency (ISO 4217): every ``*_micros`` amount the API shows is in it.

Set once at start from ``billing.currency`` (config.py validates it), then read by each
money-bearing view as its ``currency`` field's default: a process-wide constant like the
log configuration, so no store or service needs the config threaded through it.

And the one conversion of micro-units to a provider's whole cents (``to_cents``, which never
rounds) and the one rounding to a cent (``round_cents``, half up).
"""

from __future__ import annotations

_currency = "USD"


def set_currency(code: str) -> None:
    global _currency
    _currency = code


def currency() -> str:
    return _currency


# Micro-units per cent: providers (Stripe) take whole cents of two-decimal currencies.
MICROS_PER_CENT = 10_000


def to_cents(micros: int) -> int:
    """``micros`` as whole cents; a ValueError when it is not a whole number of cents.

    It never rounds: a charge of 1.234567 would silently become another amount. A caller
    that computed a fraction (a prorated fee) rounds first, with ``round_cents``.
    """
    if isinstance(micros, bool) or not isinstance(micros, int):
        raise TypeError(f"micros must be an int, not {type(micros).__name__}")
    if micros % MICROS_PER_CENT:
        raise ValueError(f"{micros} micros is not a whole number of cents: round it with round_cents first")
    return micros // MICROS_PER_CENT


def round_cents(micros: int) -> int:
    """``micros`` rounded to a whole cent, half up (half away from zero), still in micros."""
    if isinstance(micros, bool) or not isinstance(micros, int):
        raise TypeError(f"micros must be an int, not {type(micros).__name__}")
    cents, rest = divmod(abs(micros), MICROS_PER_CENT)
    if rest * 2 >= MICROS_PER_CENT:
        cents += 1
    return (cents if micros >= 0 else -cents) * MICROS_PER_CENT
