"""Request bodies and JSON views of the invoice routes (msgspec)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from controlplane.invoices.models import Invoice, InvoiceStats, Jurisdiction
from controlplane.shared import money

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Code = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Rate = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,3}(\.[0-9]{1,4})?$",
                                   description="Percent, exact decimal: \"8.5\" is 8.5 %")]
Amount = Annotated[int, msgspec.Meta(gt=0, le=1_000_000_000_000, multiple_of=10_000)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Prefix = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._/-]{0,16}$")]
Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class JurisdictionBody(_Body):
    name: Name
    code: Code
    rate: Rate
    enabled: bool = True


class TaxAssignmentBody(_Body):
    jurisdiction_id: Id | None


class ChargeBody(_Body):
    description: Text
    amount_micros: Amount
    kind: Literal["setup", "porting", "custom"] = "custom"


Reference = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._:/-]{1,100}$")]


class PendingChargeBody(ChargeBody):
    """A one-time charge for the tenant's next invoice; ``reference`` makes a retry harmless."""

    reference: Reference | None = None


class PendingItemView(msgspec.Struct, kw_only=True):
    id: int
    tenant_id: str
    kind: str
    description: str
    amount_micros: int
    reference: str
    created_at: datetime
    currency: str = msgspec.field(default_factory=money.currency)


class OffCycleBody(_Body):
    tenant_id: Id
    lines: Annotated[list[ChargeBody], msgspec.Meta(min_length=1, max_length=50)]
    issue: bool = False


class NumberingBody(_Body):
    prefix: Prefix


class LineView(msgspec.Struct, kw_only=True):
    kind: str
    description: str
    quantity: str
    unit_micros: int
    amount_micros: int
    currency: str = msgspec.field(default_factory=money.currency)


class TaxView(msgspec.Struct, kw_only=True):
    name: str
    rate: str


class InvoiceView(msgspec.Struct, kw_only=True):
    id: str
    partner_id: str
    tenant_id: str
    number: str | None
    status: str
    off_cycle: bool
    period_start: datetime
    period_end: datetime
    issued_at: datetime | None
    due_at: datetime | None
    lines: list[LineView]
    subtotal_micros: int
    tax: TaxView | None
    tax_micros: int
    total_micros: int
    paid_micros: int
    credited_micros: int
    outstanding_micros: int
    created_at: datetime | None
    currency: str

    @classmethod
    def of(cls, i: Invoice) -> InvoiceView:
        return cls(id=i.id, partner_id=i.partner_id, tenant_id=i.tenant_id, number=i.number, status=i.status.value,
                   off_cycle=i.off_cycle, period_start=i.period_start, period_end=i.period_end,
                   issued_at=i.issued_at, due_at=i.due_at,
                   lines=[LineView(kind=line.kind, description=line.description, quantity=line.quantity,
                                   unit_micros=line.unit_micros, amount_micros=line.amount_micros)
                          for line in i.lines],
                   subtotal_micros=i.subtotal_micros,
                   tax=None if i.tax_name is None or i.tax_rate is None else TaxView(name=i.tax_name, rate=i.tax_rate),
                   tax_micros=i.tax_micros, total_micros=i.total_micros, paid_micros=i.paid_micros,
                   credited_micros=i.credited_micros, outstanding_micros=i.outstanding_micros,
                   created_at=i.created_at, currency=i.currency)


class StatsView(msgspec.Struct, kw_only=True):
    count: int
    total_micros: int
    paid_micros: int
    unpaid_micros: int
    outstanding_micros: int
    currency: str = msgspec.field(default_factory=money.currency)

    @classmethod
    def of(cls, s: InvoiceStats) -> StatsView:
        return cls(count=s.count, total_micros=s.total_micros, paid_micros=s.paid_micros,
                   unpaid_micros=s.unpaid_micros, outstanding_micros=s.outstanding_micros)


class JurisdictionView(msgspec.Struct, kw_only=True):
    id: str
    name: str
    code: str
    rate: str
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, j: Jurisdiction) -> JurisdictionView:
        return cls(id=j.id, name=j.name, code=j.code, rate=j.rate_percent, enabled=j.enabled,
                   created_at=j.created_at, updated_at=j.updated_at)


class TaxAssignmentView(msgspec.Struct, kw_only=True):
    tenant_id: str
    jurisdiction: JurisdictionView | None


class NumberingView(msgspec.Struct, kw_only=True):
    prefix: str
    next_number: int
