"""The partner's billing cycle and what it is charged for it. Pure: no I/O.

Seed 003 "Trial -> Active": the cycle is the calendar month (UTC); activation charges the
platform fee "prorated based on the time left in the current calendar month", then the fee is
charged on the 1st. Issue 14 item 5: per-extension and per-DID monthly fees draw from the
wallet; a unit present at cycle start is charged then, a unit added mid-cycle is charged
prorated by day from the day it was added, a released unit stops at the next cycle.

Proration is ``fee x days left (today included) / days in month``, rounded HALF_UP to a whole
cent (``controlplane.shared.money.round_cents``). The exact quotient is floored to a micro-unit
first: the cent boundary (a remainder of 5,000 micros) is a whole number, so flooring a value
never moves it across that boundary and the result equals rounding the exact fraction.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

from cdr_ingest.tiers import TierPrices
from controlplane.shared.money import round_cents

# The partner's price list in force at a moment (its tier's schedule, or its Enterprise contract).
PricesAt = Callable[[datetime], TierPrices | None]

__all__ = ["PricesAt", "UnitKind", "Unit", "UnitCharge", "cycle_of", "cycle_start", "next_cycle_start", "days_in_month",
           "days_left", "prorate", "unit_fee", "unit_charges"]


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("times must be timezone-aware")
    return at.astimezone(UTC)


def cycle_of(at: datetime) -> str:
    """The cycle a moment falls in, ``YYYY-MM`` (UTC): the key of every monthly reference."""
    at = _utc(at)
    return f"{at.year:04d}-{at.month:02d}"


def cycle_start(cycle: str) -> datetime:
    year, month = (int(p) for p in cycle.split("-"))
    return datetime(year, month, 1, tzinfo=UTC)


def next_cycle_start(at: datetime) -> datetime:
    at = _utc(at)
    return datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)


def days_in_month(at: datetime | date) -> int:
    return calendar.monthrange(at.year, at.month)[1]


def days_left(at: datetime) -> int:
    """Days left in the month of ``at``, its own day included (UTC): 1 on the last day."""
    at = _utc(at)
    return days_in_month(at) - at.day + 1


def prorate(fee_micros: int, at: datetime) -> int:
    """The part of a monthly fee for the rest of the month from ``at``'s day, in whole cents."""
    if fee_micros < 0:
        raise ValueError("a fee is never negative")
    at = _utc(at)
    return round_cents(fee_micros * days_left(at) // days_in_month(at))


class UnitKind(StrEnum):
    """A billable unit and the wallet entry kind (controlplane.wallet EntryKind) it is charged as."""

    EXTENSION = "ext"
    DID_LOCAL = "did_local"
    DID_TOLL_FREE = "did_toll_free"

    @property
    def entry_kind(self) -> str:
        return {"ext": "monthly_extension", "did_local": "monthly_did_local",
                "did_toll_free": "monthly_did_toll_free"}[self.value]

    @property
    def reference_kind(self) -> str:
        """The reference's unit part (contract: ``fee:<cycle>:ext:<id>`` / ``fee:<cycle>:did:<id>``)."""
        return "ext" if self is UnitKind.EXTENSION else "did"


@dataclass(frozen=True, slots=True)
class Unit:
    """An extension, or a DID in the partner's inventory (assigned or not), as it stands now."""

    unit_id: str
    kind: UnitKind
    added_at: datetime
    tenant_id: str | None


@dataclass(frozen=True, slots=True)
class UnitCharge:
    unit: Unit
    reference: str
    amount_micros: int  # what the wallet is debited (positive)
    full_fee_micros: int
    prorated: bool

    @property
    def entry_kind(self) -> str:
        return self.unit.kind.entry_kind


def unit_fee(prices: TierPrices, kind: UnitKind) -> int | None:
    """The monthly fee of one unit in a price list; None: custom and not set (Enterprise)."""
    if kind is UnitKind.EXTENSION:
        return prices.per_extension
    if kind is UnitKind.DID_LOCAL:
        return prices.did_local_monthly
    return prices.did_toll_free_monthly


def unit_charges(units: Iterable[Unit], *, now: datetime, billing_from: datetime,
                 prices_at: PricesAt) -> list[UnitCharge]:
    """What each unit owes for the cycle ``now`` falls in.

    ``billing_from`` is when the partner's paid service began (activation): nothing is charged
    for trial time, so a unit that predates activation counts as added at activation. A unit whose
    billing starts before the cycle owes the full fee, priced at cycle start; one that starts in
    the cycle owes the fee prorated from that day, priced on that day (rate changes are
    prospective: ToS 6.5). The reference makes each charge once per unit and cycle, however
    often this runs. A unit gone before the job saw it is never charged (released units stop).
    """
    now = _utc(now)
    cycle = cycle_of(now)
    start = cycle_start(cycle)
    charges: list[UnitCharge] = []
    for unit in units:
        since = max(_utc(unit.added_at), _utc(billing_from))
        if since > now:
            continue  # not billable yet (clock skew between the row and the job's `now`)
        priced_at = max(since, start)
        prices = prices_at(priced_at)
        if prices is None:
            continue
        fee = unit_fee(prices, unit.kind)
        if fee is None:
            continue
        prorated = since > start
        amount = prorate(fee, since) if prorated else fee
        if amount <= 0:
            continue
        charges.append(UnitCharge(unit, f"fee:{cycle}:{unit.kind.reference_kind}:{unit.unit_id}", amount, fee,
                                  prorated))
    return charges
