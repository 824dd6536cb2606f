"""Trial and plan-change rules (seed 003 "Trial -> Active", "Changing your plan"). Pure: no I/O.

- A new partner is TRIAL for 14 days; a trial that ends unactivated suspends the partner;
  activation (from TRIAL or SUSPENDED) makes it ACTIVE.
- Partners choose among Starter, Professional and Business; Enterprise is the operator's
  ("Contact Sales"), so a partner can neither pick it nor leave it by itself.
- Upgrade: immediate, charged now: the difference of the two monthly fees prorated to the rest
  of the month (the current fee is already paid for this month). In trial nothing is charged.
- Downgrade: at the end of the cycle (the 1st of next month), refused while the partner has more
  extensions than the lower tier allows; choosing the current tier cancels a pending downgrade.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cdr_ingest.tiers import Tier, TierPrices
from controlplane.account.cycle import next_cycle_start, prorate
from provisioning.model import PartnerStatus

TRIAL_DAYS = 14
# Seed 003 "Rate changes": "We post any rate change at least 30 days in advance".
PRICE_NOTICE_DAYS = 30
ORDER = (Tier.STARTER, Tier.PROFESSIONAL, Tier.BUSINESS, Tier.ENTERPRISE)
SELF_SERVICE = (Tier.STARTER, Tier.PROFESSIONAL, Tier.BUSINESS)


def trial_ends_at(created_at: datetime) -> datetime:
    return created_at + timedelta(days=TRIAL_DAYS)


def trial_expired(status: PartnerStatus, ends_at: datetime | None, now: datetime) -> bool:
    return status is PartnerStatus.TRIAL and ends_at is not None and now >= ends_at


def can_activate(status: PartnerStatus) -> bool:
    return status in (PartnerStatus.TRIAL, PartnerStatus.SUSPENDED)


class ChangeKind(StrEnum):
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    CANCEL_DOWNGRADE = "cancel_downgrade"


class PlanRefusal(Exception):
    """A plan change the rules refuse: ``code`` for the problem, ``field`` when it is the input's fault."""

    def __init__(self, code: str, message: str, *, field: str | None = None,
                 extra: dict[str, int | str | None] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra or {}


@dataclass(frozen=True, slots=True)
class PlanChange:
    current: Tier
    target: Tier
    kind: ChangeKind
    effective_at: datetime
    new_monthly_fee_micros: int
    prorated_charge_micros: int  # the fee difference for the rest of this month
    charge_now_micros: int  # 0 in trial and for downgrades


def plan_change(*, status: PartnerStatus, current: Tier, pending: Tier | None, target: Tier,
                current_prices: TierPrices, target_prices: TierPrices, extensions: int,
                now: datetime) -> PlanChange:
    """What changing ``current`` to ``target`` means now, or the refusal."""
    if target not in SELF_SERVICE:
        raise PlanRefusal("enterprise_contact_sales", "Enterprise is set up by the platform: contact sales",
                          field="tier")
    if current not in SELF_SERVICE:
        raise PlanRefusal("enterprise_contact_sales", "an Enterprise plan is changed by the platform: contact sales")
    if status is PartnerStatus.SUSPENDED:
        raise PlanRefusal("account_suspended", "activate the account before changing the plan")
    fee = target_prices.monthly_fee
    if fee is None:
        raise PlanRefusal("no_price", f"{target.value} has no monthly fee in force", field="tier")
    if target is current:
        if pending is None:
            raise PlanRefusal("same_plan", f"already on {current.value}", field="tier")
        return PlanChange(current, target, ChangeKind.CANCEL_DOWNGRADE, now, fee, 0, 0)
    if ORDER.index(target) > ORDER.index(current):
        old_fee = current_prices.monthly_fee or 0
        difference = prorate(max(fee - old_fee, 0), now)
        charge = 0 if status is PartnerStatus.TRIAL else difference
        return PlanChange(current, target, ChangeKind.UPGRADE, now, fee, difference, charge)
    cap = target_prices.max_extensions
    if cap is not None and extensions > cap:
        raise PlanRefusal("over_extension_cap",
                          f"{extensions} extensions exceed {target.value}'s cap of {cap}: remove some first",
                          field="tier", extra={"cap": cap, "current": extensions})
    # In trial there is no paid cycle to finish: the lower tier applies at once.
    at = now if status is PartnerStatus.TRIAL else next_cycle_start(now)
    return PlanChange(current, target, ChangeKind.DOWNGRADE, at, fee, 0, 0)


def downgrade_due(pending: Tier | None, pending_prices: TierPrices | None, extensions: int) -> bool:
    """Whether a pending downgrade applies at cycle start (the cap is checked again then)."""
    if pending is None or pending_prices is None:
        return False
    cap = pending_prices.max_extensions
    return cap is None or extensions <= cap
