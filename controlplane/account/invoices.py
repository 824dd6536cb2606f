"""Subscription invoices: the view and the PDF (the one renderer, controlplane.documents). No I/O.

Seed 003 "Subscription invoices": "Every monthly platform fee charge generates an invoice ...
flagged as subscription_invoice and have PDFs attached". Activation and upgrade charges make one
too: each card charge of the platform's own fees has its invoice.
"""

from __future__ import annotations

from controlplane.account.models import Invoice, InvoiceLine
from controlplane.account.store import InvoiceRow
from controlplane.documents import render
from controlplane.documents.models import InvoiceDocument, Issuer, Line, Recipient, Title

KIND = "subscription_invoice"


def view(row: InvoiceRow) -> Invoice:
    return Invoice(id=row.id, number=row.number, partner_id=row.partner_id, kind=KIND, purpose=row.purpose,
                   cycle=row.cycle, tier=row.tier, amount_micros=row.amount_micros,
                   lines=[InvoiceLine(description=str(x["description"]), amount_micros=int(x["amount_micros"]),
                                      currency=row.currency)
                          for x in row.lines],
                   created_at=row.created_at, pdf_url=f"/v1/account/invoices/{row.id}/pdf", currency=row.currency)


def document(row: InvoiceRow, partner_name: str, issuer: str = "Platform") -> InvoiceDocument:
    """Every subscription invoice records a card charge that succeeded: it is paid when issued."""
    return InvoiceDocument(
        title=Title.SUBSCRIPTION_INVOICE, number=row.number, issuer=Issuer(brand_name=issuer),
        recipient=Recipient(name=partner_name, account=row.partner_id), issued_on=row.created_at.date(),
        currency=row.currency,
        lines=tuple(Line(str(x["description"]), int(x["amount_micros"])) for x in row.lines),
        subtotal_micros=row.amount_micros, total_micros=row.amount_micros, paid_micros=row.amount_micros,
        facts=(("Cycle", row.cycle), ("Plan", row.tier.value.title())), status="Paid by card")


def render_pdf(row: InvoiceRow, partner_name: str, issuer: str = "Platform") -> bytes:
    return render.render(document(row, partner_name, issuer))
