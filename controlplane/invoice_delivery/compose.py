"""An invoice, its tenant and the partner's brand -> the document and the mail's values. Pure.

Dates are the tenant's: an invoice issued at 02:00 UTC on the 1st is dated the 30th in
Los Angeles, as the tenant's period is (its billing period is in its time zone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from controlplane.collection.models import CreditNoteRecord
from controlplane.documents.models import InvoiceDocument, Issuer, Line, Logo, Recipient, TaxLine, Title
from controlplane.documents.text import money
from controlplane.invoices.models import Invoice, InvoiceStatus

# The statuses a reminder is for: issued and not (fully) paid.
UNPAID = frozenset({InvoiceStatus.SENT, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.OVERDUE})


@dataclass(frozen=True)
class Billed:
    """The tenant as its invoice names it."""

    id: str
    name: str
    sip_prefix: str
    billing_email: str
    timezone: str


@dataclass(frozen=True)
class BrandFacts:
    """The partner's brand as printed (brand.store.brand and its logo)."""

    brand_name: str
    support_email: str | None
    statement_descriptor: str | None
    primary_color: str | None
    logo: Logo | None


@dataclass(frozen=True)
class InvoiceMail:
    """What the invoice and reminder mail templates see as ``invoice``."""

    number: str
    tenant_name: str
    issued_on: str
    due_on: str | None
    period: str | None
    total: str
    amount_due: str
    status: str


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_day(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def last_day(end: datetime, tz: ZoneInfo) -> date:
    """A period ends at the start of the next one (exclusive): its last day is the day before."""
    return (end.astimezone(tz) - timedelta(microseconds=1)).date()


def status_text(status: InvoiceStatus) -> str:
    return status.value.replace("_", " ").capitalize()


def filename(number: str) -> str:
    """The PDF's file name: the number, with anything a file name should not carry replaced."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", number) + ".pdf"


def issuer(brand: BrandFacts) -> Issuer:
    return Issuer(brand_name=brand.brand_name, support_email=brand.support_email,
                  statement_descriptor=brand.statement_descriptor, primary_color=brand.primary_color,
                  logo=brand.logo)


def document(invoice: Invoice, tenant: Billed, brand: BrandFacts) -> InvoiceDocument:
    """The tenant invoice as printed. Only an issued invoice has a number to print."""
    if invoice.number is None or invoice.issued_at is None:
        raise ValueError(f"invoice {invoice.id} is not issued: a draft has no document")
    tz = zone(tenant.timezone)
    tax = None
    if invoice.tax_name is not None:
        tax = TaxLine(name=invoice.tax_name, rate_percent=invoice.tax_rate, amount_micros=invoice.tax_micros)
    return InvoiceDocument(
        title=Title.INVOICE, number=invoice.number, issuer=issuer(brand),
        recipient=Recipient(name=tenant.name, email=tenant.billing_email, account=tenant.sip_prefix),
        issued_on=local_day(invoice.issued_at, tz), currency=invoice.currency,
        lines=tuple(Line(description=x.description, amount_micros=x.amount_micros, quantity=x.quantity,
                         unit_micros=x.unit_micros) for x in invoice.lines),
        subtotal_micros=invoice.subtotal_micros, tax=tax, total_micros=invoice.total_micros,
        due_on=None if invoice.due_at is None else local_day(invoice.due_at, tz),
        period_start=local_day(invoice.period_start, tz), period_end=last_day(invoice.period_end, tz),
        paid_micros=invoice.paid_micros, credited_micros=invoice.credited_micros,
        status=status_text(invoice.status))


def credit_note_document(note: CreditNoteRecord, invoice_number: str, tenant: Billed,
                         brand: BrandFacts) -> InvoiceDocument:
    """A refund as printed: numbered once the provider refunded it (collection, docs/collection.md)."""
    if note.number is None or note.issued_at is None:
        raise ValueError(f"credit note {note.credit_note_id} is not issued: it has no number yet")
    notes: tuple[str, ...] = ()
    if note.usage_credit_micros:
        notes += (f"Of which usage credited on the next invoice: {money(note.usage_credit_micros, note.currency)}.",)
    if note.reason:
        notes += (f"Reason: {note.reason}",)
    return InvoiceDocument(
        title=Title.CREDIT_NOTE, number=note.number, issuer=issuer(brand),
        recipient=Recipient(name=tenant.name, email=tenant.billing_email, account=tenant.sip_prefix),
        issued_on=local_day(note.issued_at, zone(tenant.timezone)), currency=note.currency,
        lines=(Line(description=f"Refund of invoice {invoice_number}", amount_micros=note.amount_micros),),
        subtotal_micros=note.amount_micros, total_micros=note.amount_micros, status="Refunded",
        refers_to=invoice_number, notes=notes)


def mail_view(doc: InvoiceDocument) -> InvoiceMail:
    period = None
    if doc.period_start is not None and doc.period_end is not None:
        period = f"{doc.period_start.isoformat()} to {doc.period_end.isoformat()}"
    return InvoiceMail(number=doc.number, tenant_name=doc.recipient.name, issued_on=doc.issued_on.isoformat(),
                       due_on=None if doc.due_on is None else doc.due_on.isoformat(), period=period,
                       total=money(doc.total_micros, doc.currency),
                       amount_due=money(doc.amount_due_micros, doc.currency), status=doc.status or "")
