"""RPC shapes of the limits capability (msgspec: validated at the edge)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from controlplane.shared import money

Count = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
Money = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
Pct = Annotated[int, msgspec.Meta(ge=1, le=100)]
Day = Annotated[int, msgspec.Meta(ge=1, le=31)]


class LimitsBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A tenant's limits (or a partner's defaults). null / absent = unlimited."""

    monthly_spend_micros: Money | None = None
    max_extensions: Count | None = None
    max_dids: Count | None = None
    monthly_minutes: Count | None = None
    max_inbound_calls: Count | None = None
    max_outbound_calls: Count | None = None
    max_two_way_calls: Count | None = None
    alert_threshold_pct: Pct = 80
    auto_suspend: bool = False
    billing_anchor_day: Day | None = None  # None: the billing profile's rule (docs/profiles.md)


class LimitDefaults(LimitsBody, kw_only=True):
    """A partner's defaults as shown: the limits plus the currency of the spend cap."""

    currency: str = msgspec.field(default_factory=money.currency)  # ISO 4217 (billing.currency)


class TenantLimits(LimitsBody, kw_only=True):
    tenant_id: str
    updated_at: datetime | None = None
    currency: str = msgspec.field(default_factory=money.currency)  # ISO 4217 (billing.currency)


class Figure(msgspec.Struct, kw_only=True):
    used: int
    limit: int | None
    pct: int | None  # of the limit, rounded down; None when unlimited


class UsageView(msgspec.Struct, kw_only=True):
    """Current cycle of one tenant, each figure against its cap."""

    tenant_id: str
    cycle_start: datetime
    cycle_end: datetime
    minutes: Figure  # billable minutes (seconds / 60, rounded down)
    spend_micros: Figure
    reserved_seconds: int  # held by calls in progress
    reserved_micros: int
    currency: str = msgspec.field(default_factory=money.currency)  # ISO 4217 (billing.currency)
    extensions: Figure
    dids: Figure
    concurrent_inbound: Figure
    concurrent_outbound: Figure
    concurrent_two_way: Figure
