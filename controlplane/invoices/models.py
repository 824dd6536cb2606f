"""The tenant invoice aggregate and the inputs its pure math reads (records only, no I/O).

Shared with collection (C), documents (D) and dunning (N) per the issue 15 contract."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum

import msgspec


class InvoiceStatus(StrEnum):
    DRAFT = "DRAFT"
    SENT = "SENT"
    PARTIALLY_PAID = "PARTIALLY_PAID"
    PAID = "PAID"
    OVERDUE = "OVERDUE"
    CANCELLED = "CANCELLED"
    VOID = "VOID"


class LineKind(StrEnum):
    BASE_FEE = "base_fee"
    EXTENSIONS = "extensions"
    DIDS_LOCAL = "dids_local"
    DIDS_TOLL_FREE = "dids_toll_free"
    MINUTES_INCLUDED = "minutes_included"
    MINUTES_LOCAL = "minutes_local"
    MINUTES_TOLL_FREE = "minutes_toll_free"
    MINUTES_INTERNATIONAL = "minutes_international"
    SETUP = "setup"
    PORTING = "porting"
    CUSTOM = "custom"
    CREDIT = "credit"


ONE_TIME_KINDS = frozenset({LineKind.SETUP, LineKind.PORTING, LineKind.CUSTOM})


# The records the invoice job makes per tenant (lines, usage rows, totals) are msgspec structs:
# immutable like the frozen dataclasses, made several times faster (a frozen dataclass sets each
# field through object.__setattr__), and never part of a cycle, so not tracked by the collector.
class InvoiceLine(msgspec.Struct, frozen=True, gc=False):
    kind: str
    description: str
    quantity: str  # exact decimal (unit-days / period days shown to 4 places: see docs/invoices.md)
    unit_micros: int
    amount_micros: int


@dataclass(frozen=True)
class Invoice:
    id: str
    partner_id: str
    tenant_id: str
    number: str | None
    status: InvoiceStatus
    period_start: datetime
    period_end: datetime
    issued_at: datetime | None
    due_at: datetime | None
    currency: str
    subtotal_micros: int
    tax_micros: int
    total_micros: int
    paid_micros: int
    credited_micros: int
    lines: tuple[InvoiceLine, ...]
    tax_name: str | None
    tax_rate: str | None  # percent, exact decimal string ("8.5" = 8.5 %)
    off_cycle: bool = False
    created_at: datetime | None = None

    @property
    def outstanding_micros(self) -> int:
        if self.status in (InvoiceStatus.VOID, InvoiceStatus.CANCELLED, InvoiceStatus.DRAFT):
            return 0
        return max(0, self.total_micros - self.paid_micros)


@dataclass(frozen=True)
class BillingTerms:
    """What the invoice reads from the tenant's billing profile (F's ``ProfileTerms``) for a period."""

    model: str  # "PAYG" | "FLAT"
    base_fee_micros: int
    included_extensions: int
    included_dids: int
    included_minutes: int
    extension_micros: int
    did_local_micros: int
    did_toll_free_micros: int
    per_minute_micros: int
    local_per_minute_micros: int | None = None
    toll_free_per_minute_micros: int | None = None
    international_per_minute_micros: int | None = None
    net_terms_days: int = 15
    profile_name: str = ""

    def __hash__(self) -> int:
        # computed once: the job looks its terms up in caches (calc) once per invoice
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(getattr(self, f.name) for f in fields(self)))
            object.__setattr__(self, "_hash", cached)
        return cached


class UnitKind(StrEnum):
    EXTENSION = "extension"
    DID_LOCAL = "did_local"
    DID_TOLL_FREE = "did_toll_free"


@dataclass(frozen=True)
class UnitSpan:
    """One stretch of time a unit (extension or DID) belonged to the tenant (unit history)."""

    kind: UnitKind
    unit_id: str
    start: datetime
    end: datetime | None  # None: still there
    count: int = 1  # units with this very stretch (the job reads them grouped)


class ClassSeconds(msgspec.Struct, frozen=True, gc=False):
    """Billable seconds of one call class in the period (call_records.billable_s summed)."""

    call_class: str  # local | toll_free | international
    seconds: int


@dataclass(frozen=True)
class OneTimeCharge:
    kind: LineKind  # setup | porting | custom
    description: str
    amount_micros: int
    quantity: str = "1"


@dataclass(frozen=True)
class Tax:
    name: str
    code: str
    rate_percent: str  # exact decimal string


class Computed(msgspec.Struct, frozen=True, gc=False):
    lines: tuple[InvoiceLine, ...]
    subtotal_micros: int
    tax_micros: int
    total_micros: int
    credit_applied_micros: int


@dataclass(frozen=True)
class Jurisdiction:
    id: str
    partner_id: str
    name: str
    code: str
    rate_percent: str
    enabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class InvoiceStats:
    count: int
    total_micros: int
    paid_micros: int
    unpaid_micros: int
    outstanding_micros: int
