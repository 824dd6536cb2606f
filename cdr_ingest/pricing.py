"""Both prices of one call: wholesale (partner pays platform) and retail
(tenant pays partner).

Policy, where seed 003 is silent or the brief decided:
- Internal (extension to extension) and emergency calls are free on both
  sides; they are recorded with a zero Charge, not left unrated.
- Unanswered calls cost 0 on both sides, no connect fee.
- INVALID numbers are never rated: both charges are None.
- Retail: the seed's billing profile has a single "Per Minute" rate that
  applies to every billable minute "regardless of call type"; separate
  local / toll-free / international rates are the roadmap item, so they
  are optional here and fall back to the single rate.
- Retail inbound minutes are billed by default (Appendix A: PAYG
  "$0.02-0.04 per minute (inbound + outbound)"; "Don't offer free
  toll-free ... you lose money on every inbound minute"); a profile can
  turn that off with charge_inbound=False.
- International and premium: retail from the profile's international deck,
  then its international rate, then the default rate (noted
  RETAIL_DEFAULT_RATE, since a domestic rate on a foreign call is a margin
  risk). Wholesale from a platform deck if given, else None with
  NO_WHOLESALE_RATE. Premium is priced like international and noted
  PREMIUM; refusing premium by default is the limits layer's decision.
- Inbound calls are classed by the DID that was called (toll-free DID ->
  toll-free traffic), which the caller passes as call_class.
- Included minutes (a Flat profile's bundle) cover domestic billable minutes
  (local and toll-free, inbound and outbound), in the order calls are
  recorded; international and premium are always charged. A call's retail
  charge is its marginal charge: 0 (no connect fee) while it fits in what is
  left of the bundle, else the seconds beyond it at the rate, plus the
  connect fee (docs/profiles.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from datetime import UTC, datetime
from enum import StrEnum

from cdr_ingest.classify import CallClass, Direction
from cdr_ingest.rates import Rate, RateDeck, Rounding
from cdr_ingest.rating import Charge, billable_seconds, free_charge, longest_fitting, price, rate_call
from cdr_ingest.tiers import DEFAULT_SCHEDULE, Tier, TierSchedule, wholesale_rate

__all__ = ["BillingProfile", "PriceNote", "CallPrice", "retail_rate", "partner_rate", "price_call",
           "INCLUDED_CLASSES", "marginal_charge"]

_PROFILE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BILLABLE = frozenset({CallClass.LOCAL, CallClass.TOLL_FREE, CallClass.INTERNATIONAL, CallClass.PREMIUM})
# The classes a profile's included minutes cover.
INCLUDED_CLASSES = frozenset({CallClass.LOCAL, CallClass.TOLL_FREE})


class PriceNote(StrEnum):
    FREE_INTERNAL = "free_internal"
    FREE_EMERGENCY = "free_emergency"
    UNANSWERED = "unanswered"
    INVALID = "invalid"
    PREMIUM = "premium"
    RETAIL_DEFAULT_RATE = "retail_default_rate"
    NO_WHOLESALE_RATE = "no_wholesale_rate"
    NO_RETAIL_RATE = "no_retail_rate"
    INCLUDED_MINUTES = "included_minutes"  # some or all of the call was in the included minutes


def _check_money(name: str, v: object, optional: bool) -> None:
    if v is None and optional:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError(f"{name} must be a non-negative int (micro-units), got {v!r}")


@dataclass(frozen=True, slots=True)
class BillingProfile:
    """A tenant's retail usage pricing (seed 003 "Billing profiles").

    Money in micro-units. Monthly fees, included quantities and overage
    thresholds are period concerns of the billing service; this is the
    per-call part. Defaults to 6/6 increments like wholesale, so a retail
    per-minute rate at or above wholesale never prices a call below cost.
    """

    profile_id: str
    per_minute: int
    local_per_minute: int | None = None
    toll_free_per_minute: int | None = None
    international_per_minute: int | None = None
    international_deck: RateDeck | None = None
    connect_fee: int = 0
    min_seconds: int = 6
    increment_seconds: int = 6
    rounding: Rounding = Rounding.HALF_UP
    charge_inbound: bool = True
    included_minutes: int = 0  # per period, domestic classes (INCLUDED_CLASSES)

    def __post_init__(self) -> None:
        if not isinstance(self.profile_id, str) or not self.profile_id:
            raise ValueError("profile_id must be a non-empty string")
        _check_money("per_minute", self.per_minute, optional=False)
        _check_money("connect_fee", self.connect_fee, optional=False)
        _check_money("min_seconds", self.min_seconds, optional=False)
        _check_money("included_minutes", self.included_minutes, optional=False)
        for name in ("local_per_minute", "toll_free_per_minute", "international_per_minute"):
            _check_money(name, getattr(self, name), optional=True)
        if not isinstance(self.increment_seconds, int) or self.increment_seconds < 1:
            raise ValueError(f"increment_seconds must be an int >= 1, got {self.increment_seconds!r}")
        object.__setattr__(self, "rounding", Rounding(self.rounding))


@dataclass(frozen=True, slots=True)
class CallPrice:
    """Wholesale and retail charge of one call; None means not rated (see notes)."""

    call_class: CallClass
    direction: Direction
    wholesale: Charge | None
    retail: Charge | None
    notes: tuple[PriceNote, ...] = ()

    @property
    def margin(self) -> int | None:
        """Partner margin in micro-units, when both sides are rated."""
        if self.wholesale is None or self.retail is None:
            return None
        return self.retail.amount - self.wholesale.amount


def _synthetic(
    profile: BillingProfile, call_class: CallClass, direction: Direction, per_minute: int, connect_fee: int
) -> Rate:
    return _profile_rate(profile.profile_id, call_class, direction, per_minute, connect_fee, profile.min_seconds,
                         profile.increment_seconds, profile.rounding)


@lru_cache(maxsize=4096)
def _profile_rate(profile_id: str, call_class: CallClass, direction: Direction, per_minute: int, connect_fee: int,
                  min_seconds: int, increment_seconds: int, rounding: Rounding) -> Rate:
    # Admission and rating price every call: the same few rates, built and validated once
    # (a Rate is immutable, so one object serves every call that prices alike).
    return Rate(
        rate_id=f"profile:{profile_id}:{call_class.value}:{direction.value}",
        prefix="0",  # synthetic: never used for matching
        per_minute=per_minute,
        connect_fee=connect_fee,
        min_seconds=min_seconds,
        increment_seconds=increment_seconds,
        rounding=rounding,
        effective_from=_PROFILE_EPOCH,
    )


def retail_rate(
    profile: BillingProfile,
    call_class: CallClass,
    direction: Direction,
    number_digits: str | None,
    at: datetime,
) -> tuple[Rate | None, bool]:
    """Retail Rate for a billable class, and whether it fell back to the default.

    number_digits (E.164 without '+') is needed only for a deck lookup.
    """
    if call_class not in _BILLABLE:
        return None, False
    if direction is Direction.INBOUND and not profile.charge_inbound:
        return _synthetic(profile, call_class, direction, 0, 0), False
    if call_class is CallClass.LOCAL:
        pm = profile.local_per_minute
    elif call_class is CallClass.TOLL_FREE:
        pm = profile.toll_free_per_minute
    else:  # international or premium
        if profile.international_deck is not None and number_digits:
            hit = profile.international_deck.find(number_digits, at)
            if hit is not None:
                return hit, False
        pm = profile.international_per_minute
        if pm is None:
            return _synthetic(profile, call_class, direction, profile.per_minute, profile.connect_fee), True
    if pm is None:
        pm = profile.per_minute  # the seed's single "Per Minute" field: the normal case
    return _synthetic(profile, call_class, direction, pm, profile.connect_fee), False


def partner_rate(
    tier: Tier,
    call_class: CallClass,
    direction: Direction,
    number_digits: str | None,
    at: datetime,
    schedule: TierSchedule = DEFAULT_SCHEDULE,
    deck: RateDeck | None = None,
) -> Rate | None:
    """The partner's (wholesale) Rate of a call: the tier table, else the platform's
    deck for the destinations the table does not price; None when neither has one."""
    rate = wholesale_rate(tier, call_class, direction, at, schedule)
    if rate is None and deck is not None and number_digits:
        rate = deck.find(number_digits, at)
    return rate


def price_call(
    *,
    call_class: CallClass,
    direction: Direction,
    answered_s: int,
    start: datetime,
    tier: Tier,
    profile: BillingProfile,
    number_digits: str | None = None,
    schedule: TierSchedule = DEFAULT_SCHEDULE,
    wholesale_deck: RateDeck | None = None,
    included_left_s: int = 0,
) -> CallPrice:
    """Price one call for the partner (wholesale) and the tenant (retail).

    start is when the call started (rates in force then apply, ToS §6.5);
    answered_s is answered time in seconds, 0 if never answered.
    wholesale_deck is the platform's deck for international / premium
    destinations, which the tier table does not price. included_left_s is
    what is left of the period's included minutes, in seconds.
    """
    if answered_s < 0:
        raise ValueError(f"answered_s must be >= 0, got {answered_s}")
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be a timezone-aware datetime")
    call_class = CallClass(call_class)
    direction = Direction(direction)

    if call_class is CallClass.INVALID:
        return CallPrice(call_class, direction, None, None, (PriceNote.INVALID,))
    if call_class is CallClass.EMERGENCY:
        free = free_charge("free:emergency", answered_s)
        return CallPrice(call_class, direction, free, free, (PriceNote.FREE_EMERGENCY,))
    if call_class is CallClass.INTERNAL or direction is Direction.INTERNAL:
        free = free_charge("free:internal", answered_s)
        return CallPrice(call_class, direction, free, free, (PriceNote.FREE_INTERNAL,))
    if answered_s == 0:
        zero = free_charge("unanswered", 0)
        return CallPrice(call_class, direction, zero, zero, (PriceNote.UNANSWERED,))

    notes: list[PriceNote] = []
    if call_class is CallClass.PREMIUM:
        notes.append(PriceNote.PREMIUM)

    w_rate = partner_rate(tier, call_class, direction, number_digits, start, schedule, wholesale_deck)
    if w_rate is None:
        notes.append(PriceNote.NO_WHOLESALE_RATE)

    r_rate, fell_back = retail_rate(profile, call_class, direction, number_digits, start)
    if fell_back:
        notes.append(PriceNote.RETAIL_DEFAULT_RATE)
    if r_rate is None:
        notes.append(PriceNote.NO_RETAIL_RATE)

    retail = None if r_rate is None else rate_call(r_rate, answered_s)
    if retail is not None and included_left_s > 0 and call_class in INCLUDED_CLASSES:
        retail = marginal_charge(retail, included_left_s)
        notes.append(PriceNote.INCLUDED_MINUTES)
    return CallPrice(
        call_class,
        direction,
        None if w_rate is None else rate_call(w_rate, answered_s),
        retail,
        tuple(notes),
    )


def marginal_charge(charge: Charge, included_left_s: int) -> Charge:
    """The charge of a call of which up to ``included_left_s`` billable seconds are in
    the bundle: only the seconds beyond it are priced (with the connect fee); the call
    keeps its full billable seconds, which is what it consumes of the bundle."""
    if charge.rate is None or included_left_s <= 0:
        return charge
    return Charge(charge.rate_id, charge.billable_seconds,
                  marginal_price(charge.rate, charge.billable_seconds, included_left_s), charge.rate)


# ---- The included-minutes rule, for rating (above) and for admission (limits): one owner.


def included_left(profile: BillingProfile | None, call_class: CallClass | None, used_s: int) -> int:
    """Billable seconds of the period's included minutes a call of ``call_class`` may still use,
    ``used_s`` being those used (or held) already; 0 when none apply (no bundle, a class the
    bundle does not cover: INCLUDED_CLASSES)."""
    if profile is None or call_class not in INCLUDED_CLASSES:
        return 0
    return max(0, profile.included_minutes * 60 - used_s)


def marginal_price(rate: Rate, billable_s: int, included_left_s: int) -> int:
    """What ``billable_s`` billable seconds cost the tenant when ``included_left_s`` of them are
    in the bundle: the seconds beyond it at the rate, with the connect fee; 0 within it."""
    return price(rate, max(0, billable_s - max(0, included_left_s)))


def marginal_affordable_seconds(rate: Rate, budget: int, included_left_s: int, cap_s: int | None = None
                                ) -> int | None:
    """Longest answered duration whose marginal charge (``marginal_price``) fits in ``budget``
    micro-units: the bundle's seconds cost nothing, even with no budget left. 0 when not even
    the first billable unit fits; None when time does not limit the call (a free per-minute
    rate whose connect fee fits). Monotone in duration: a binary search over increments.
    ``cap_s``: the caller cuts the call there anyway, so the search goes no further (an answer
    of at least ``cap_s`` then stands for any longer one; a big budget costs one evaluation)."""
    budget = max(budget, 0)
    inc, low = rate.increment_seconds, rate.min_seconds

    def cost(k: int) -> int:
        return marginal_price(rate, billable_seconds(k * inc, low, inc), included_left_s)

    if cost(1) > budget:
        return 0
    if rate.per_minute == 0:
        if price(rate, 1) <= budget:
            return None  # beyond the bundle only the connect fee, and it fits
        # the first unit fits only inside the bundle: the call lasts as long as the bundle does
        return included_left_s // inc * inc
    hi = max(0, included_left_s) // inc + ((budget + 1) * 60 // rate.per_minute) // inc + 2
    return longest_fitting(lambda k: cost(k) <= budget, hi, inc, cap_s) * inc
