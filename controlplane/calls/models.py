"""Bodies and views of the calls RPC (msgspec Structs). Money is integer micro-units."""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from cdr_ingest.records import CallRecord
from controlplane.shared import money


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class CallView(CallRecord, kw_only=True):
    """A call as listed and got: the record plus the currency of its amounts."""

    currency: str = msgspec.field(default_factory=money.currency)  # ISO 4217 (billing.currency)


class UsageLine(msgspec.Struct, kw_only=True):
    call_class: str
    calls: int
    answered_s: int
    billable_s: int
    minutes: int  # billable minutes, rounded up
    retail_micros: int
    wholesale_micros: int
    currency: str = msgspec.field(default_factory=money.currency)  # ISO 4217 (billing.currency)


class UsageSummary(msgspec.Struct, kw_only=True):
    tenant_id: str
    cycle_start: date
    lines: list[UsageLine]
    calls: int
    billable_s: int
    retail_micros: int
    wholesale_micros: int
    currency: str = msgspec.field(default_factory=money.currency)  # ISO 4217 (billing.currency)


class RateDeckView(msgspec.Struct, kw_only=True):
    partner_id: str
    rates: int
    prefixes: int
