"""Records and request bodies of the numbers capability (msgspec Structs)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import msgspec
from msgspec import UNSET, UnsetType

from controlplane.numbers.porting import PortStatus
from controlplane.shared import money
from e911.provider import E911Status


class NumberKind(StrEnum):
    LOCAL = "local"
    TOLL_FREE = "toll_free"


class CnamStatus(StrEnum):
    NONE = "NONE"
    PENDING = "PENDING"
    SYNCED = "SYNCED"
    FAILED = "FAILED"


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class AvailableNumber(msgspec.Struct, kw_only=True):
    number: str
    kind: NumberKind
    region: str | None
    rate_center: str | None
    monthly_price_micros: int | None  # None: custom (Enterprise)
    setup_fee_micros: int
    per_minute_micros: int | None
    currency: str = msgspec.field(default_factory=money.currency)  # ISO 4217 (billing.currency)


class PurchaseRequest(_Body):
    numbers: list[str]


class E911Address(_Body):
    street: str
    city: str
    state: str
    zip: str
    unit: str | None = None
    country: str = "US"


class PhoneNumber(msgspec.Struct, kw_only=True):
    id: str
    partner_id: str
    number: str
    kind: NumberKind
    status: str
    tenant_id: str | None
    tenant_name: str | None
    extension_id: str | None
    region: str | None
    rate_center: str | None
    monthly_price_micros: int | None
    setup_fee_micros: int | None
    currency: str = msgspec.field(default_factory=money.currency)  # ISO 4217 (billing.currency)
    billing_since: datetime | None
    cnam: str | None
    effective_cnam: str | None
    cnam_status: CnamStatus
    cnam_error: str | None
    e911_status: E911Status
    e911_address: E911Address | None
    e911_error: str | None
    created_at: datetime
    updated_at: datetime


class PurchaseResult(msgspec.Struct, kw_only=True):
    numbers: list[PhoneNumber]
    setup_total_micros: int
    monthly_total_micros: int
    wallet_balance_micros: int
    currency: str = msgspec.field(default_factory=money.currency)  # ISO 4217 (billing.currency)


class AssignRequest(_Body):
    tenant_id: str
    extension_id: str | None = None


class RouteRequest(_Body):
    extension_id: str | None


class CnamRequest(_Body):
    cnam: str | None


class BulkRequest(_Body):
    action: str  # assign | release | e911
    ids: list[str]
    tenant_id: str | None = None
    address: E911Address | None = None
    dry_run: bool = False


class BulkChange(msgspec.Struct, kw_only=True):
    id: str
    number: str
    change: str  # what happens / happened, or why it is skipped
    applied: bool


class BulkSummary(msgspec.Struct, kw_only=True):
    action: str
    dry_run: bool
    changed: int
    skipped: int
    items: list[BulkChange]


class E911Request(_Body):
    address: E911Address
    apply_to_tenant: bool = False


class ComplianceRow(msgspec.Struct, kw_only=True):
    id: str
    number: str
    tenant_id: str | None
    tenant_name: str | None
    e911_status: E911Status
    e911_error: str | None


class ComplianceReport(msgspec.Struct, kw_only=True):
    total: int
    by_status: dict[str, int]
    items: list[ComplianceRow]


class PortCreate(_Body):
    numbers: list[str]
    losing_carrier: str
    account_holder: str
    account_number: str
    service_address: E911Address
    tenant_id: str
    pin: str | None = None
    desired_date: date | None = None


class PortAction(_Body):
    foc_date: date | None = None
    reason: str | None = None


class PortDocument(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    filename: str
    content_type: str
    size: int
    created_at: datetime


class PortRequest(msgspec.Struct, kw_only=True):
    id: str
    partner_id: str
    tenant_id: str
    numbers: list[str]
    losing_carrier: str
    account_holder: str
    account_number: str
    has_pin: bool
    service_address: E911Address
    desired_date: date | None
    foc_date: date | None
    status: PortStatus
    reject_reason: str | None
    documents: list[PortDocument]
    created_at: datetime
    updated_at: datetime


__all__ = ["UNSET", "UnsetType"]
