"""Wholesale prices of the four platform tiers (what a partner pays us).

Source: seed 003, "Account & Subscription" -> "The four platform tiers":

    Tier          $/mo    Max Ext    Per-Ext  DID /mo (Local / TF)  Local /min  Toll-Free /min
    Starter       $249    300        $3.00    $1.75 / $2.50         $0.020      $0.022
    Professional  $549    1,000      $2.00    $1.50 / $2.25         $0.016      $0.019
    Business      $999    unlimited  $1.25    $1.25 / $2.00         $0.014      $0.017
    Enterprise    custom  unlimited  custom   custom                custom      custom

Direction: the seed says per-minute is "billed for actual call time
(inbound + outbound)" with one price per class, so the same price applies
to both directions. For inbound calls the class is that of the DID that
was called (a toll-free DID makes toll-free traffic: "the receiving party
pays the carrier fee").

Increments: the seed only says "billed for actual call time"; it names no
minimum or increment. We bill wholesale in 6-second increments with a
6-second minimum (6/6, the usual US carrier granularity), rounding the
micro-unit HALF_UP. With 6/6 every rate in the table divides exactly
(e.g. $0.022/min = 2,200 micro-units per 6 s), so rounding never triggers.

Enterprise is "custom": its money fields are None and wholesale_rate()
returns None until a per-partner schedule is built with with_prices().
The seed has no international or premium per-minute price: those come
from a platform rate deck (see pricing.price_call). Appendix A's "your
wholesale per-minute is ~$0.012" is an illustration that contradicts the
table; the table wins.

Rate changes are prospective (ToS §6.5): a schedule holds dated versions
and a call is priced by the version in force when it started.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from datetime import UTC, datetime
from enum import StrEnum

from cdr_ingest.classify import CallClass, Direction
from cdr_ingest.money import parse_micros
from cdr_ingest.rates import Rate, Rounding

__all__ = [
    "Tier",
    "TierPrices",
    "TierSchedule",
    "DEFAULT_SCHEDULE",
    "SCHEDULE_EPOCH",
    "WHOLESALE_MIN_SECONDS",
    "WHOLESALE_INCREMENT_SECONDS",
    "WHOLESALE_ROUNDING",
    "wholesale_rate",
]

WHOLESALE_MIN_SECONDS = 6
WHOLESALE_INCREMENT_SECONDS = 6
WHOLESALE_ROUNDING = Rounding.HALF_UP
# The seed gives no date for its table; it is in force from the beginning.
SCHEDULE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Tier(StrEnum):
    """The platform tiers: the one enum, spelled as partners store it and the RPC shows it."""

    STARTER = "STARTER"
    PROFESSIONAL = "PROFESSIONAL"
    BUSINESS = "BUSINESS"
    ENTERPRISE = "ENTERPRISE"

    @property
    def rate_key(self) -> str:
        """The tier's part of a tier rate id (``tier:starter:local:outbound``). Rated calls
        store that id, so it keeps the lowercase it has always had."""
        return self.value.lower()


@dataclass(frozen=True, slots=True)
class TierPrices:
    """One dated version of one tier's price list. Money in micro-units.

    None means "custom" for money fields and "unlimited" for max_extensions.
    """

    tier: Tier
    effective_from: datetime
    monthly_fee: int | None
    max_extensions: int | None
    per_extension: int | None
    did_local_monthly: int | None
    did_toll_free_monthly: int | None
    local_per_minute: int | None
    toll_free_per_minute: int | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tier", Tier(self.tier))
        at = self.effective_from
        if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("effective_from must be a timezone-aware datetime")
        object.__setattr__(self, "effective_from", at.astimezone(UTC))
        for name in (
            "monthly_fee",
            "max_extensions",
            "per_extension",
            "did_local_monthly",
            "did_toll_free_monthly",
            "local_per_minute",
            "toll_free_per_minute",
        ):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ValueError(f"{name} must be None or a non-negative int, got {v!r}")

    def per_minute(self, call_class: CallClass) -> int | None:
        """Wholesale per-minute price of a class, None if the tier has none."""
        if call_class is CallClass.LOCAL:
            return self.local_per_minute
        if call_class is CallClass.TOLL_FREE:
            return self.toll_free_per_minute
        return None


def _m(text: str) -> int:
    return parse_micros(text)


def _row(tier: Tier, fee: str, max_ext: int | None, *money: str) -> TierPrices:
    ext, did_local, did_tf, local_pm, tf_pm = (_m(m) for m in money)
    return TierPrices(tier, SCHEDULE_EPOCH, _m(fee), max_ext, ext, did_local, did_tf, local_pm, tf_pm)


_SEED_TABLE: tuple[TierPrices, ...] = (
    #    tier               $/mo   max ext  per-ext  DID local  DID TF  local/min  TF/min
    _row(Tier.STARTER,      "249", 300,     "3.00",  "1.75",    "2.50", "0.020",   "0.022"),
    _row(Tier.PROFESSIONAL, "549", 1_000,   "2.00",  "1.50",    "2.25", "0.016",   "0.019"),
    _row(Tier.BUSINESS,     "999", None,    "1.25",  "1.25",    "2.00", "0.014",   "0.017"),
    TierPrices(Tier.ENTERPRISE, SCHEDULE_EPOCH, None, None, None, None, None, None, None),  # "custom"
)


class TierSchedule:
    """Dated tier price lists; the version in force at a call's start applies."""

    __slots__ = ("_versions",)

    def __init__(self, prices: Iterable[TierPrices]) -> None:
        by_tier: dict[Tier, list[TierPrices]] = {}
        for p in prices:
            by_tier.setdefault(p.tier, []).append(p)
        versions: dict[Tier, tuple[TierPrices, ...]] = {}
        for tier, ps in by_tier.items():
            ps.sort(key=lambda p: p.effective_from)
            for a, b in zip(ps, ps[1:]):
                if a.effective_from == b.effective_from:
                    raise ValueError(
                        f"tier {tier} has two price lists effective {a.effective_from.isoformat()}"
                    )
            versions[tier] = tuple(ps)
        self._versions = versions

    def with_prices(self, *prices: TierPrices) -> TierSchedule:
        """A copy with more versions, e.g. an Enterprise contract or a posted change.

        A version with the same tier and effective_from replaces the old one.
        """
        replaced = {(p.tier, p.effective_from) for p in prices}
        kept = [p for ps in self._versions.values() for p in ps if (p.tier, p.effective_from) not in replaced]
        return TierSchedule([*kept, *prices])

    def prices_at(self, tier: Tier, at: datetime) -> TierPrices | None:
        """The version of tier in force at `at` (None before the first one)."""
        found = None
        for p in self._versions.get(Tier(tier), ()):
            if p.effective_from <= at:
                found = p
            else:
                break
        return found

    def next_change(self, tier: Tier, at: datetime) -> datetime | None:
        """When the version in force at `at` is superseded, if a change is posted."""
        for p in self._versions.get(Tier(tier), ()):
            if p.effective_from > at:
                return p.effective_from
        return None


DEFAULT_SCHEDULE = TierSchedule(_SEED_TABLE)


def wholesale_rate(
    tier: Tier,
    call_class: CallClass,
    direction: Direction,
    at: datetime,
    schedule: TierSchedule = DEFAULT_SCHEDULE,
) -> Rate | None:
    """Synthetic Rate for a partner's wholesale price of one call.

    None when the tier table has no price: internal and emergency calls
    (free), international / premium / invalid (not in the table), internal
    direction, and Enterprise until its contract prices are scheduled.
    """
    if direction not in (Direction.INBOUND, Direction.OUTBOUND):
        return None
    prices = schedule.prices_at(tier, at)
    if prices is None:
        return None
    per_minute = prices.per_minute(call_class)
    if per_minute is None:
        return None
    return _tier_rate(prices.tier.rate_key, CallClass(call_class), Direction(direction), per_minute,
                      prices.effective_from, schedule.next_change(tier, prices.effective_from))


@lru_cache(maxsize=1024)
def _tier_rate(rate_key: str, call_class: CallClass, direction: Direction, per_minute: int, effective_from: datetime,
               effective_to: datetime | None) -> Rate:
    # Every call's wholesale price: a handful of rates, built and validated once (immutable).
    return Rate(
        rate_id=f"tier:{rate_key}:{call_class.value}:{direction.value}",
        prefix="1",  # the NANP; tier prices only cover +1 local and toll-free traffic
        per_minute=per_minute,
        connect_fee=0,
        min_seconds=WHOLESALE_MIN_SECONDS,
        increment_seconds=WHOLESALE_INCREMENT_SECONDS,
        rounding=WHOLESALE_ROUNDING,
        effective_from=effective_from,
        effective_to=effective_to,
    )
