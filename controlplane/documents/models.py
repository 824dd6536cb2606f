"""The record a billing document is rendered from. Plain values only: the caller has read
the brand, the logo and the invoice, and chosen the dates (in the recipient's time zone)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class Title(StrEnum):
    INVOICE = "Invoice"
    CREDIT_NOTE = "Credit note"
    SUBSCRIPTION_INVOICE = "Subscription invoice"


@dataclass(frozen=True)
class Logo:
    content_type: str  # image/png, image/jpeg or image/svg+xml (checked by the brand capability)
    data: bytes


@dataclass(frozen=True)
class Issuer:
    """Who bills: the partner's brand (seed 003 "Brand inheritance"), or the platform."""

    brand_name: str
    support_email: str | None = None
    statement_descriptor: str | None = None
    primary_color: str | None = None  # "#rrggbb"; None: the default blue
    logo: Logo | None = None


@dataclass(frozen=True)
class Recipient:
    name: str
    email: str | None = None
    account: str | None = None  # how the issuer knows it (a tenant's SIP prefix, a partner id)


@dataclass(frozen=True)
class Line:
    description: str
    amount_micros: int
    quantity: str | None = None  # an exact decimal as text ("620", "0.516129")
    unit_micros: int | None = None  # may be finer than a cent ($0.025/min)


@dataclass(frozen=True)
class TaxLine:
    name: str
    rate_percent: str | None  # an exact decimal as text: "8.5" is printed 8.5%
    amount_micros: int


@dataclass(frozen=True)
class InvoiceDocument:
    title: Title
    number: str
    issuer: Issuer
    recipient: Recipient
    issued_on: date
    currency: str
    lines: tuple[Line, ...]
    subtotal_micros: int
    total_micros: int
    tax: TaxLine | None = None
    due_on: date | None = None
    period_start: date | None = None
    period_end: date | None = None  # the last day billed, inclusive (as printed)
    paid_micros: int = 0
    credited_micros: int = 0  # refunded through credit notes
    status: str | None = None  # as printed: "Paid", "Sent", "Paid by card"...
    refers_to: str | None = None  # a credit note: the number of the invoice it credits
    facts: tuple[tuple[str, str], ...] = ()  # more (label, value) pairs under the dates (cycle, plan...)
    notes: tuple[str, ...] = ()

    @property
    def amount_due_micros(self) -> int:
        """What is still owed; a refund does not make the invoice owed again."""
        return max(self.total_micros - self.paid_micros, 0)
