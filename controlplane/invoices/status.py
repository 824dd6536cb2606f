"""The invoice status transition table (the one owner of which status may follow which).

Void only from Draft (a draft has no number yet, so voiding never leaves a gap); an issued
invoice that must not be collected is Cancelled (it keeps its number: numbers are never reused)."""

from __future__ import annotations

from types import MappingProxyType

from controlplane.invoices.models import InvoiceStatus as S

TRANSITIONS: MappingProxyType[S, frozenset[S]] = MappingProxyType({
    S.DRAFT: frozenset({S.SENT, S.VOID}),
    S.SENT: frozenset({S.PARTIALLY_PAID, S.PAID, S.OVERDUE, S.CANCELLED}),
    S.PARTIALLY_PAID: frozenset({S.PARTIALLY_PAID, S.PAID, S.OVERDUE, S.CANCELLED}),
    S.OVERDUE: frozenset({S.PARTIALLY_PAID, S.PAID, S.CANCELLED}),
    S.PAID: frozenset(),
    S.CANCELLED: frozenset(),
    S.VOID: frozenset(),
})

# Where a payment may land, and what it makes of the invoice.
PAYABLE = frozenset({S.SENT, S.PARTIALLY_PAID, S.OVERDUE})
OPEN = PAYABLE


class TransitionRefused(ValueError):
    def __init__(self, current: S, target: S) -> None:
        super().__init__(f"an invoice in {current} cannot become {target}")
        self.current = current
        self.target = target


def allowed(current: S, target: S) -> bool:
    return target in TRANSITIONS[current]


def check(current: S, target: S) -> S:
    if not allowed(current, target):
        raise TransitionRefused(current, target)
    return target


def after_payment(current: S, total_micros: int, paid_micros: int) -> S:
    """The status once ``paid_micros`` of ``total_micros`` are paid (a payment on a payable invoice)."""
    target = S.PAID if paid_micros >= total_micros else S.PARTIALLY_PAID
    return check(current, target)
