"""What a partner pays for a number, from its platform tier (cdr_ingest.tiers). Pure.

The seed gives the monthly DID price per tier and "$1.00 typically" as the
one-time setup fee; Enterprise prices are custom (None) until a contract is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cdr_ingest.tiers import DEFAULT_SCHEDULE, Tier, TierSchedule

SETUP_FEE_MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class NumberPrice:
    monthly: int | None
    setup: int
    per_minute: int | None


def price(tier: str, kind: str, at: datetime | None = None,
          schedule: TierSchedule = DEFAULT_SCHEDULE) -> NumberPrice:
    """``tier`` as stored on partners (STARTER...), ``kind`` local or toll_free."""
    prices = schedule.prices_at(Tier(tier), at or datetime.now(UTC))
    if prices is None:
        return NumberPrice(None, SETUP_FEE_MICROS, None)
    if kind == "toll_free":
        return NumberPrice(prices.did_toll_free_monthly, SETUP_FEE_MICROS, prices.toll_free_per_minute)
    return NumberPrice(prices.did_local_monthly, SETUP_FEE_MICROS, prices.local_per_minute)
