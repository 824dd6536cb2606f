"""The partner's price schedule: the seed's tier table plus the operator's dated changes, or an
Enterprise partner's contract. Pure: the rows come from the store.

Rate changes are prospective (seed 003 "Rate changes", ToS 6.5): a version applies from its
``effective_from``; what was charged before stands. A change is posted at least
``PRICE_NOTICE_DAYS`` ahead ("We post any rate change at least 30 days in advance").
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from cdr_ingest.tiers import DEFAULT_SCHEDULE, Tier, TierPrices, TierSchedule
from controlplane.account.cycle import PricesAt
from controlplane.account.plans import PRICE_NOTICE_DAYS

CENT = 10_000


def schedule(operator: Iterable[TierPrices], enterprise: Iterable[TierPrices] = ()) -> TierSchedule:
    """The seed's table with the operator's versions; an Enterprise contract replaces the seed's
    "custom" Enterprise row (its versions start at the contract's first date)."""
    built = DEFAULT_SCHEDULE.with_prices(*operator)
    contract = list(enterprise)
    if contract:
        built = built.with_prices(*contract)
    return built


def prices_at(built: TierSchedule, tier: Tier) -> PricesAt:
    def at(moment: datetime) -> TierPrices | None:
        return built.prices_at(tier, moment)
    return at


def next_version(built: TierSchedule, tier: Tier, now: datetime) -> TierPrices | None:
    when = built.next_change(tier, now)
    return built.prices_at(tier, when) if when is not None else None


def price_change_errors(p: TierPrices, now: datetime) -> list[tuple[str, str]]:
    """(field, message) for every reason to refuse an operator's tier price change."""
    errors: list[tuple[str, str]] = []
    if p.tier is Tier.ENTERPRISE:
        errors.append(("tier", "Enterprise prices are set per partner (PUT /v1/partners/{id}/enterprise-prices)"))
    if p.effective_from < now + timedelta(days=PRICE_NOTICE_DAYS):
        errors.append(("effective_from", f"a price change is posted at least {PRICE_NOTICE_DAYS} days ahead"))
    errors.extend(fee_errors(p))
    return errors


def fee_errors(p: TierPrices) -> list[tuple[str, str]]:
    """The monthly fee goes to a card: whole cents only (payments refuse fractions of a cent)."""
    if p.monthly_fee is not None and p.monthly_fee % CENT:
        return [("monthly_fee_micros", "whole cents only (a multiple of 10000 micro-units)")]
    return []
