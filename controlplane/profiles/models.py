"""Records and RPC shapes of billing profiles (pure; importable by other capabilities).

Money is integer micro-units. ``ProfileTerms`` is the contract the invoicing, collection
and dunning capabilities read (notes/contracts15.md "F -> I, C, N").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

import msgspec

from controlplane.shared import money

Money = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
Count = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
Seconds = Annotated[int, msgspec.Meta(ge=0, le=86_400)]
Increment = Annotated[int, msgspec.Meta(ge=1, le=3_600)]
Days = Annotated[int, msgspec.Meta(ge=0, le=3_650)]
TrialDays = Annotated[int, msgspec.Meta(ge=1, le=3_650)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
Rounding = Literal["up", "down", "half_up"]


class PricingModel(StrEnum):
    PAYG = "PAYG"
    FLAT = "FLAT"


@dataclass(frozen=True, slots=True)
class ProfileTerms:
    """A profile's terms. Flat: units above the included quantities are billed at the unit
    rates (the overage rates); PAYG: included quantities are normally 0."""

    profile_id: str
    partner_id: str
    name: str
    model: PricingModel
    base_fee_micros: int
    included_extensions: int
    included_dids: int
    included_minutes: int
    extension_micros: int  # per extension per month, above the included ones
    did_local_micros: int  # per standard DID per month
    did_toll_free_micros: int  # per toll-free DID per month
    per_minute_micros: int
    local_per_minute_micros: int | None
    toll_free_per_minute_micros: int | None
    international_per_minute_micros: int | None
    connect_fee_micros: int
    min_seconds: int
    increment_seconds: int
    rounding: str
    charge_inbound: bool
    trial_days: int | None
    then_profile_id: str | None
    overdue_after_days: int = 7
    suspend_after_days: int | None = 14  # None = suspension is manual
    net_terms_days: int = 15


@dataclass(frozen=True, slots=True)
class RateOverrides:
    """A tenant's own per-call rates over its profile's (None = the profile's)."""

    per_minute_micros: int | None = None
    local_per_minute_micros: int | None = None
    toll_free_per_minute_micros: int | None = None
    international_per_minute_micros: int | None = None
    connect_fee_micros: int | None = None
    min_seconds: int | None = None
    increment_seconds: int | None = None
    rounding: str | None = None
    charge_inbound: bool | None = None


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ProfileBody(_Body):
    """A profile as created or replaced (PUT replaces every field; absent = its default)."""

    name: Name
    model: PricingModel
    base_fee_micros: Money = 0
    included_extensions: Count = 0
    included_dids: Count = 0
    included_minutes: Count = 0
    extension_micros: Money = 0
    did_local_micros: Money = 0
    did_toll_free_micros: Money = 0
    per_minute_micros: Money = 0
    local_per_minute_micros: Money | None = None
    toll_free_per_minute_micros: Money | None = None
    international_per_minute_micros: Money | None = None
    connect_fee_micros: Money = 0
    min_seconds: Seconds = 6
    increment_seconds: Increment = 6
    rounding: Rounding = "half_up"
    charge_inbound: bool = True
    trial_days: TrialDays | None = None
    then_profile_id: str | None = None
    overdue_after_days: Days = 7
    suspend_after_days: Days | None = 14
    net_terms_days: Days = 15


class ProfileView(ProfileBody, kw_only=True):
    id: str
    partner_id: str
    builtin: str | None  # "payg" / "flat": made with the partner
    is_default: bool  # named by the tenant defaults (or the Pay-As-You-Go fallback)
    tenants: int  # tenants on it now or from their next period
    created_at: datetime
    updated_at: datetime
    currency: str = msgspec.field(default_factory=money.currency)  # ISO 4217 (billing.currency)


class AssignmentBody(_Body):
    """PUT /v1/tenants/{id}/billing-profile: switch the profile (at the tenant's next period)
    and/or set the tenant's own per-call rates (at once; null or absent = the profile's)."""

    profile_id: str | None = None
    per_minute_micros: Money | None = None
    local_per_minute_micros: Money | None = None
    toll_free_per_minute_micros: Money | None = None
    international_per_minute_micros: Money | None = None
    connect_fee_micros: Money | None = None
    min_seconds: Seconds | None = None
    increment_seconds: Increment | None = None
    rounding: Rounding | None = None
    charge_inbound: bool | None = None


class AssignmentView(msgspec.Struct, kw_only=True):
    tenant_id: str
    profile_id: str | None  # in force now
    profile_name: str | None
    model: PricingModel | None
    since: datetime | None
    next_profile_id: str | None  # a switch waiting for the next period
    next_effective_from: datetime | None
    period_start: datetime
    period_end: datetime
    per_minute_micros: int | None = None
    local_per_minute_micros: int | None = None
    toll_free_per_minute_micros: int | None = None
    international_per_minute_micros: int | None = None
    connect_fee_micros: int | None = None
    min_seconds: int | None = None
    increment_seconds: int | None = None
    rounding: str | None = None
    charge_inbound: bool | None = None
    updated_at: datetime | None = None  # of the overrides
    currency: str = msgspec.field(default_factory=money.currency)  # ISO 4217 (billing.currency)


OVERRIDE_FIELDS = tuple(RateOverrides.__dataclass_fields__)
