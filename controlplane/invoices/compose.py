"""One tenant's invoice for one period, from its inputs (pure: the job and the off-cycle path
read the inputs, this decides the lines)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec

from controlplane.invoices import calc
from controlplane.invoices.models import (
    BillingTerms,
    ClassSeconds,
    Computed,
    InvoiceLine,
    LineKind,
    OneTimeCharge,
    Tax,
    UnitSpan,
)


@dataclass(frozen=True)
class Cycle:
    """The period an invoice covers and the billing terms that applied to it."""

    start: datetime
    end: datetime
    terms: BillingTerms


@dataclass(frozen=True)
class Pending:
    """Credits and one-time charges waiting for the invoice (``tenant_invoice_items``)."""

    kind: LineKind
    description: str
    amount_micros: int


class Composed(msgspec.Struct, frozen=True, gc=False):
    computed: Computed
    credit_left_micros: int  # what the invoice could not absorb: carried to the next one


def compose(cycle: Cycle, timezone: str, seconds: Sequence[ClassSeconds], spans: Sequence[UnitSpan],
            pending: Sequence[Pending], tax: Tax | None) -> Composed:
    return finish(cycle.terms, fixed_lines(cycle, timezone, spans), seconds, pending, tax)


def fixed_lines(cycle: Cycle, timezone: str, spans: Sequence[UnitSpan]) -> tuple[InvoiceLine, ...]:
    """The base fee and unit lines: the same for every tenant with the same cycle, time zone and
    unit stretches, so the job computes them once for such tenants (the lines are immutable)."""
    return calc.fixed_lines(cycle.terms, spans, cycle.start, cycle.end, timezone)


def finish(terms: BillingTerms, fixed: Sequence[InvoiceLine], seconds: Sequence[ClassSeconds],
           pending: Sequence[Pending], tax: Tax | None) -> Composed:
    """The invoice from its ``fixed_lines``: minutes, one-time charges, credits and tax."""
    lines = list(fixed)
    lines.extend(calc.minute_lines(terms, seconds))
    if not pending:
        return Composed(calc.compute(lines, 0, tax), 0)
    lines.extend(calc.one_time_lines([OneTimeCharge(p.kind, p.description, p.amount_micros)
                                      for p in pending if p.kind is not LineKind.CREDIT]))
    credits = sum(p.amount_micros for p in pending if p.kind is LineKind.CREDIT)
    computed = calc.compute(lines, credits, tax)
    return Composed(computed, credits - computed.credit_applied_micros)


def off_cycle(charges: Sequence[OneTimeCharge], tax: Tax | None) -> Computed:
    return calc.compute(calc.one_time_lines(charges), 0, tax)
