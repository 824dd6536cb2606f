"""Usage-cap policy: admission, in-flight reservations, cut-off seconds, thresholds.

Pure functions of data (no I/O, no clock: ``now`` is passed in), so every rule is
unit- and property-tested without Asterisk. Money is integer micro-units; times
are UTC tz-aware; durations integer seconds.

Reservation rule (Kazoo's): an admitted call reserves its whole cut-off (its
seconds and their price) until it is recorded, so N parallel calls can never be
granted more than the allowance: the sum of the reservations of calls in
progress plus recorded usage never exceeds a cap, and a call is cut by Asterisk
(``Dial(...,L(ms))``) at its reservation. A released reservation is not handed to
calls already in progress (their ``L()`` cannot grow); the next call gets it.

The partner's account (issue 14) is one more step of the same decision: a SUSPENDED
partner's tenants are refused, a TRIAL's international and premium calls are refused,
and an ACTIVE partner's wallet is held like a spend cap at the partner's (wholesale)
rate: refused at zero, otherwise cut where the wallet runs out (``account_refusal``,
``wallet_seconds``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from cdr_ingest.classify import CallClass
from cdr_ingest.rates import Rate
from cdr_ingest.pricing import marginal_affordable_seconds, marginal_price
from cdr_ingest.rating import affordable_seconds, billable_seconds, price
from provisioning.access import CAUSE_CALL_REJECTED
from provisioning.model import PartnerStatus

# Q.850 causes PJSIP turns into SIP responses (chan_pjsip ast_cause2sip):
CAUSE_FORBIDDEN = CAUSE_CALL_REJECTED  # 21 -> 403 Forbidden: suspended, minutes or spend exhausted
CAUSE_BUSY = 17  # user busy -> 486 Busy Here: the tenant's trunk channels are all in use
CAUSE_UNAVAILABLE = 34  # no circuit -> 503: admission unreachable and policy is fail-closed
CAUSE_INVALID_NUMBER = 28  # invalid number format -> 484: not a number the trunk may receive


class Pool(StrEnum):
    """Seed 002 trunk channels: a call takes its direction's pool, overflowing into two-way."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"
    TWO_WAY = "two_way"


class Reason(StrEnum):
    OK = "ok"
    SUSPENDED = "suspended"
    MINUTES = "monthly_minutes"
    SPEND = "monthly_spend"
    CONCURRENT = "concurrent_calls"
    NO_RATE = "no_rate"  # a spend or minutes cap applies and the destination cannot be rated
    NOT_A_NUMBER = "not_a_number"  # not a destination of the dialled-number rule (cdr_ingest.dialing)
    PARTNER_SUSPENDED = "partner_suspended"  # the partner's trial ended unactivated
    TRIAL_RESTRICTED = "trial_restricted"  # international / premium while the partner is in TRIAL
    WALLET_EMPTY = "wallet_empty"  # the partner's wallet cannot pay the call's first billable unit


# Seed 003 "Trial": international and premium destinations are not open to a trial.
TRIAL_REFUSED: frozenset[CallClass] = frozenset({CallClass.INTERNATIONAL, CallClass.PREMIUM})
# Outbound classes that cost the partner (draw on its wallet); emergency and internal never do.
BILLABLE: frozenset[CallClass] = frozenset({CallClass.LOCAL, CallClass.TOLL_FREE, CallClass.PREMIUM,
                                            CallClass.INTERNATIONAL})


@dataclass(frozen=True, slots=True)
class Limits:
    """A tenant's caps; None = unlimited."""

    monthly_spend_micros: int | None = None
    max_extensions: int | None = None
    max_dids: int | None = None
    monthly_minutes: int | None = None
    max_inbound: int | None = None
    max_outbound: int | None = None
    max_two_way: int | None = None
    alert_threshold_pct: int = 80
    auto_suspend: bool = False
    # The period starts on this day of the month, in the tenant's timezone; None: the
    # profile's rule (PAYG: the 1st; Flat: the tenant's anniversary; cdr_ingest.cycles).
    billing_anchor_day: int | None = None


@dataclass(slots=True)
class Usage:
    """Recorded usage of the current cycle (billable seconds, retail micros; ``included_s``: the
    billable seconds of the classes the included minutes cover, cdr_ingest.pricing)."""

    billable_s: int = 0
    spend_micros: int = 0
    included_s: int = 0


@dataclass(frozen=True, slots=True)
class Hold:
    """What one call in progress holds: its pool, and the seconds/micros reserved."""

    call_id: str
    pool: Pool | None
    seconds: int = 0
    micros: int = 0
    wallet_micros: int = 0  # the partner's wallet reserved for it, at the partner's (wholesale) rate


@dataclass(frozen=True, slots=True)
class Account:
    """The partner behind a tenant, as admission sees it: its status and what its wallet can
    still pay (balance minus the wallet holds of calls in progress and of recorded calls
    whose debit the balance may not show yet: controlplane.limits.state.PartnerState)."""

    status: PartnerStatus = PartnerStatus.ACTIVE
    available_micros: int = 0


def wallet_applies(account: Account | None, call_class: CallClass | None) -> bool:
    """Seed 003 / issue 14: an ACTIVE partner's billable outbound calls draw on its wallet; a
    trial draws nothing ("You won't be charged") and emergency never depends on it."""
    return account is not None and account.status is PartnerStatus.ACTIVE and call_class in BILLABLE


def wallet_seconds(wholesale: Rate | None, available_micros: int, cap_s: int | None = None) -> int | None:
    """Seconds of a call the wallet covers: 0 = refuse; None = the wallet sets no cut-off.

    At zero (or below) every billable call is refused, rated or not. Above zero a call the
    partner's rate prices is cut where the wallet runs out, like a spend cap; one it does not
    price (no wholesale rate) costs the wallet nothing, so the wallet does not time it.
    ``cap_s``: where the call is cut anyway (``affordable_seconds``).
    """
    if available_micros <= 0:
        return 0
    if wholesale is None:
        return None
    return affordable_seconds(wholesale, available_micros, cap_s)


def account_refusal(account: Account | None, call_class: CallClass | None) -> Decision | None:
    """The partner's status step: a suspended partner's tenants place no call (emergency
    aside: never asked here); a trial may not dial international or premium numbers."""
    if account is None:
        return None
    if account.status is PartnerStatus.SUSPENDED:
        return Decision(False, Reason.PARTNER_SUSPENDED, CAUSE_FORBIDDEN, detail="the partner's account is suspended")
    if account.status is PartnerStatus.TRIAL and call_class in TRIAL_REFUSED:
        return Decision(False, Reason.TRIAL_RESTRICTED, CAUSE_FORBIDDEN,
                        detail=f"{call_class} calls are not available during the trial")
    return None


class Holds(dict[str, Hold]):
    """Holds by call id, with their sums kept as they change: a decision reads them per call,
    and a tenant may have hundreds of calls held (in progress, or ended and not yet
    recorded), so summing on every decision grew with them (docs/performance.md). Only the
    mutations below exist: the others are refused rather than left to bypass the sums."""

    def __init__(self, initial: Mapping[str, Hold] | None = None) -> None:
        super().__init__()
        self.seconds = 0
        self.micros = 0
        self.pools: dict[Pool | None, int] = {}
        for call_id, hold in (initial or {}).items():
            self[call_id] = hold

    def _count(self, hold: Hold, sign: int) -> None:
        self.seconds += sign * hold.seconds
        self.micros += sign * hold.micros
        self.pools[hold.pool] = self.pools.get(hold.pool, 0) + sign

    def __setitem__(self, call_id: str, hold: Hold) -> None:
        old = self.get(call_id)
        if old is not None:
            self._count(old, -1)
        super().__setitem__(call_id, hold)
        self._count(hold, 1)

    def __delitem__(self, call_id: str) -> None:
        self._count(self[call_id], -1)
        super().__delitem__(call_id)

    def pop(self, call_id: str, *default: Hold | None) -> Hold | None:  # type: ignore[override]
        if call_id in self:
            hold = self[call_id]
            del self[call_id]
            return hold
        if default:
            return default[0]
        raise KeyError(call_id)

    def _refused(self, *_: object, **__: object) -> None:
        raise TypeError("Holds: set, delete or pop one hold at a time (the sums follow them)")

    update = setdefault = popitem = clear = __ior__ = _refused  # type: ignore[assignment]


@dataclass(slots=True)
class Ledger:
    """In-flight state of one tenant: its holds by call id."""

    holds: Holds = field(default_factory=Holds)

    def __post_init__(self) -> None:
        if not isinstance(self.holds, Holds):  # given a plain mapping (tests): counted from here on
            self.holds = Holds(self.holds)  # type: ignore[unreachable]

    def reserved(self) -> tuple[int, int]:
        return self.holds.seconds, self.holds.micros

    def in_pool(self, pool: Pool) -> int:
        return self.holds.pools.get(pool, 0)


@dataclass(frozen=True, slots=True)
class Decision:
    admit: bool
    reason: Reason
    cause: int = 0  # Q.850 cause for a refusal
    limit_s: int | None = None  # absolute cut-off after answer; None = no time limit
    hold: Hold | None = None
    detail: str = ""
    number: str = ""  # the E.164 number classified and rated: the one the trunk receives


def pool_for(limits: Limits, ledger: Ledger, inbound: bool) -> tuple[bool, Pool | None]:
    """The pool a new call takes (seed 002: direction first, then two-way).

    No trunk caps at all: unlimited (pool None). Otherwise an unset cap counts
    as no channels of that kind, so "max_outbound=3" alone means 3 outbound.
    """
    own_cap = limits.max_inbound if inbound else limits.max_outbound
    if own_cap is None and limits.max_two_way is None:
        return True, None
    own = Pool.INBOUND if inbound else Pool.OUTBOUND
    if ledger.in_pool(own) < (own_cap or 0):
        return True, own
    if ledger.in_pool(Pool.TWO_WAY) < (limits.max_two_way or 0):
        return True, Pool.TWO_WAY
    return False, None


def seconds_within(rate: Rate | None, remaining_s: int) -> int:
    """Longest answered duration whose *billable* seconds fit in remaining_s."""
    if remaining_s <= 0:
        return 0
    inc = rate.increment_seconds if rate else 1
    low = rate.min_seconds if rate else 0
    if remaining_s < max(low, inc if low == 0 else 0):
        return 0
    best = (remaining_s // inc) * inc
    return best if billable_seconds(best, low, inc) <= remaining_s else 0


def rated_caps(limits: Limits) -> bool:
    """A cap measured by rating applies: spend (money) or minutes (billable seconds)."""
    return limits.monthly_spend_micros is not None or limits.monthly_minutes is not None


def decide(limits: Limits, calls_allowed: bool, usage: Usage, ledger: Ledger, call_id: str,
           rate: Rate | None, max_call_s: int, *, partner_rated: bool = True,
           account: Account | None = None, call_class: CallClass | None = None,
           wholesale: Rate | None = None, included_left_s: int = 0) -> Decision:
    """Admit or refuse one outbound billable call, and what it reserves if admitted.

    ``rate`` is the tenant's (retail) rate of the destination, ``partner_rated`` whether
    the partner's (wholesale) one exists. Fail closed: under a spend or minutes cap a
    destination that cannot be fully rated is refused, since its record would count
    nothing against the cap (and charge nothing).

    ``account`` (None: no partner step) adds the partner's status and wallet: ``wholesale``
    is then the partner's rate of the destination, ``call_class`` its class. The wallet is
    held like a spend cap: an admitted call reserves what its cut-off costs the partner.

    ``included_left_s``: billable seconds of the tenant's included minutes this call may use
    (``cdr_ingest.pricing.included_left``). They cost the tenant nothing (its record's retail is
    the marginal charge), so the spend cap times and holds only what lies beyond them
    (``marginal_affordable_seconds`` / ``marginal_price``: the rating rule, not a copy).
    """
    refused = account_refusal(account, call_class)
    if refused is not None:
        return refused
    if not calls_allowed:
        return Decision(False, Reason.SUSPENDED, CAUSE_FORBIDDEN, detail="tenant is not active")
    ok, pool = pool_for(limits, ledger, inbound=False)
    if not ok:
        return Decision(False, Reason.CONCURRENT, CAUSE_BUSY,
                        detail=f"outbound {limits.max_outbound or 0} + two-way {limits.max_two_way or 0} in use")
    if rated_caps(limits) and (rate is None or not partner_rated):
        side = "tenant (retail)" if rate is None else "partner (wholesale)"
        return Decision(False, Reason.NO_RATE, CAUSE_FORBIDDEN, detail=f"no {side} rate for this destination")
    reserved_s, reserved_micros = ledger.reserved()
    limit: int | None = None
    if limits.monthly_minutes is not None:
        left_s = limits.monthly_minutes * 60 - usage.billable_s - reserved_s
        limit = seconds_within(rate, left_s)
        if limit == 0:
            return Decision(False, Reason.MINUTES, CAUSE_FORBIDDEN, detail=f"{max(left_s, 0)} s left")
    if limits.monthly_spend_micros is not None and rate is not None:  # rate is set: checked above
        budget = limits.monthly_spend_micros - usage.spend_micros - reserved_micros
        by_spend = marginal_affordable_seconds(rate, budget, included_left_s, max_call_s)
        if by_spend == 0:
            return Decision(False, Reason.SPEND, CAUSE_FORBIDDEN, detail=f"{max(budget, 0)} micros left")
        if by_spend is not None:
            limit = by_spend if limit is None else min(limit, by_spend)
    draws = wallet_applies(account, call_class)
    if draws:
        assert account is not None  # wallet_applies
        by_wallet = wallet_seconds(wholesale, account.available_micros, max_call_s)
        if by_wallet == 0:
            return Decision(False, Reason.WALLET_EMPTY, CAUSE_FORBIDDEN,
                            detail=f"{max(account.available_micros, 0)} micros available in the wallet")
        if by_wallet is not None:
            limit = by_wallet if limit is None else min(limit, by_wallet)
    if limit is not None:
        limit = min(limit, max_call_s)
    seconds = micros = wallet = 0
    if limit is not None:
        seconds = billable_seconds(limit, rate.min_seconds, rate.increment_seconds) if rate else limit
        micros = marginal_price(rate, seconds, included_left_s) if rate else 0
        if draws and wholesale is not None:
            wallet = price(wholesale, billable_seconds(limit, wholesale.min_seconds, wholesale.increment_seconds))
    return Decision(True, Reason.OK, limit_s=limit, hold=Hold(call_id, pool, seconds, micros, wallet))


def admit_inbound(limits: Limits, ledger: Ledger, call_id: str) -> Decision:
    """Inbound calls only take a trunk channel (minutes are counted when recorded)."""
    ok, pool = pool_for(limits, ledger, inbound=True)
    if not ok:
        return Decision(False, Reason.CONCURRENT, CAUSE_BUSY, detail="inbound + two-way channels in use")
    return Decision(True, Reason.OK, hold=Hold(call_id, pool))


def shortened(limits: Limits, calls_allowed: bool, usage: Usage, holds: list[tuple[Hold, int]]
              ) -> dict[str, int]:
    """After the allowance shrank: call id -> seconds it may still run (0 = hang up now).

    ``holds`` are (hold, seconds since admission), oldest first; the oldest calls
    keep their reservation, younger ones are shortened first. Calls that still
    fit are not listed.
    """
    if not calls_allowed:
        return {h.call_id: 0 for h, _ in holds if h.pool is not Pool.INBOUND}
    if limits.monthly_minutes is None:
        return {}
    left = limits.monthly_minutes * 60 - usage.billable_s
    out: dict[str, int] = {}
    for hold, elapsed in holds:
        if hold.pool is Pool.INBOUND or hold.seconds == 0:
            continue
        grant = min(hold.seconds, max(left, 0))
        left -= grant
        if grant < hold.seconds:
            out[hold.call_id] = max(grant - elapsed, 0)
    return out


# ---------------------------------------------------------------- thresholds and caps


class Crossing(StrEnum):
    THRESHOLD = "threshold"
    CAP = "cap"


@dataclass(frozen=True, slots=True)
class Alert:
    cap: str  # monthly_minutes | monthly_spend | max_extensions | max_dids
    kind: Crossing
    used: int
    limit: int


def alerts(limits: Limits, figures: dict[str, int]) -> list[Alert]:
    """Every cap at or past its threshold / limit; the caller sends each once per cycle."""
    caps = {"monthly_minutes": None if limits.monthly_minutes is None else limits.monthly_minutes * 60,
            "monthly_spend": limits.monthly_spend_micros, "max_extensions": limits.max_extensions,
            "max_dids": limits.max_dids}
    out: list[Alert] = []
    for name, cap in caps.items():
        used = figures.get(name)
        if cap is None or used is None:
            continue
        if cap > 0 and used * 100 >= cap * limits.alert_threshold_pct:
            out.append(Alert(name, Crossing.THRESHOLD, used, cap))
        if used >= cap and name in ("monthly_minutes", "monthly_spend"):
            out.append(Alert(name, Crossing.CAP, used, cap))
    return out


def alert_event(tenant_id: str, alert: Alert, limits: Limits, cycle_start: datetime) -> tuple[str, dict[str, object]]:
    """The event type and data announcing one crossing."""
    data: dict[str, object] = {
        "tenant_id": tenant_id, "cap": alert.cap, "used": alert.used, "limit": alert.limit,
        "threshold_pct": limits.alert_threshold_pct, "cycle_start": cycle_start.isoformat(),
        "unit": {"monthly_spend": "micros", "monthly_minutes": "seconds"}.get(alert.cap, "count")}
    if alert.kind is Crossing.THRESHOLD:
        return "usage.threshold_reached", data
    return "usage.cap_reached", {**data, "auto_suspend": limits.auto_suspend}


def count_cap_exceeded(cap: int | None, current: int) -> bool:
    """Creating one more would exceed the cap (a cap lowered below usage trips the next)."""
    return cap is not None and current + 1 > cap
