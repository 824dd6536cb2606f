"""Billable time and price of one call leg under one Rate.

Integer arithmetic only: per_minute * seconds / 60 is resolved to a whole
micro-unit by the rate's Rounding, so the same call always costs the same
and sums of charges equal the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cdr_ingest.rates import Rate, Rounding

__all__ = ["Charge", "billable_seconds", "price", "rate_call", "free_charge", "affordable_seconds"]


@dataclass(frozen=True, slots=True)
class Charge:
    """What one leg costs: amount in micro-units, and which rate said so.

    `rate` is the exact Rate version used (None for free / unanswered
    legs), kept so an invoice line can be explained after a rate change.
    """

    rate_id: str
    billable_seconds: int
    amount: int
    rate: Rate | None = None


def billable_seconds(duration_s: int, min_seconds: int, increment_s: int) -> int:
    """Answered seconds rounded up to the increment, at least the minimum.

    0 for an unanswered / zero-length call: nothing is billed, not even
    the minimum. 61 s at 60/6 -> 66; at 60/60 -> 120; 5 s at 60/6 -> 60.
    """
    if duration_s < 0:
        raise ValueError(f"duration_s must be >= 0, got {duration_s}")
    if min_seconds < 0:
        raise ValueError(f"min_seconds must be >= 0, got {min_seconds}")
    if increment_s < 1:
        raise ValueError(f"increment_s must be >= 1, got {increment_s}")
    if duration_s == 0:
        return 0
    rounded = -(-duration_s // increment_s) * increment_s
    return rounded if rounded > min_seconds else min_seconds


def _per_minute_part(per_minute: int, billable_s: int, rounding: Rounding) -> int:
    q, r = divmod(per_minute * billable_s, 60)
    if r == 0 or rounding is Rounding.DOWN:
        return q
    if rounding is Rounding.UP:
        return q + 1
    return q + 1 if 2 * r >= 60 else q  # HALF_UP


def price(rate: Rate, billable_s: int) -> int:
    """Micro-units for billable_s already-rounded seconds under `rate`.

    The connect fee is charged only when something is billable: an
    unanswered call costs nothing at all.
    """
    if billable_s < 0:
        raise ValueError(f"billable_s must be >= 0, got {billable_s}")
    if billable_s == 0:
        return 0
    return rate.connect_fee + _per_minute_part(rate.per_minute, billable_s, rate.rounding)


def rate_call(rate: Rate, answered_s: int) -> Charge:
    """Charge for a leg answered for answered_s seconds (0 = unanswered)."""
    billable = billable_seconds(answered_s, rate.min_seconds, rate.increment_seconds)
    return Charge(rate.rate_id, billable, price(rate, billable), rate)


def free_charge(rate_id: str, answered_s: int) -> Charge:
    """A zero charge that still records the (unrounded) answered seconds."""
    if answered_s < 0:
        raise ValueError(f"answered_s must be >= 0, got {answered_s}")
    return Charge(rate_id, answered_s, 0, None)


def longest_fitting(fits: Callable[[int], bool], hi: int, increment_s: int, cap_s: int | None) -> int:
    """The largest k in [1, ``hi``] (in increments) for which ``fits``, monotone (true, then false)
    and true at 1: a binary search. ``cap_s``: the caller cuts the call there anyway, so the search
    stops at the first increment that reaches it (a budget that covers it: one evaluation)."""
    if cap_s is not None:
        hi = max(1, min(hi, -(-cap_s // increment_s)))
    if fits(hi):
        return hi
    lo = 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def affordable_seconds(rate: Rate, budget: int, cap_s: int | None = None) -> int | None:
    """Longest answered duration whose charge fits within budget micro-units.

    Lets the caller cap a call in progress (max session time) so an
    allowance is never overdrawn. 0 when even the first billable unit
    (minimum + connect fee) does not fit; None when the rate is free per
    minute, so time is not what limits the call. Price is monotone in
    duration, so a binary search over increments is exact. ``cap_s``: the
    caller cuts the call there anyway, so the search goes no further (an
    answer of at least ``cap_s`` then stands for any longer one).
    """
    if budget < 0:
        return 0
    inc = rate.increment_seconds
    if price(rate, billable_seconds(inc, rate.min_seconds, inc)) > budget:
        return 0
    if rate.per_minute == 0:
        return None
    # Any affordable k has per_minute * k * inc / 60 < budget + 1.
    hi = ((budget + 1) * 60 // rate.per_minute) // inc + 1
    return longest_fitting(lambda k: price(rate, billable_seconds(k * inc, rate.min_seconds, inc)) <= budget,
                           hi, inc, cap_s) * inc
