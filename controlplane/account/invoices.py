"""Subscription invoices: the view and the PDF (fpdf2). No I/O beyond building bytes.

Seed 003 "Subscription invoices": "Every monthly platform fee charge generates an invoice ...
flagged as subscription_invoice and have PDFs attached". Activation and upgrade charges make one
too: each card charge of the platform's own fees has its invoice.
"""

from __future__ import annotations

from fpdf import FPDF

from controlplane.account.models import Invoice, InvoiceLine
from controlplane.account.store import InvoiceRow

KIND = "subscription_invoice"


def view(row: InvoiceRow) -> Invoice:
    return Invoice(id=row.id, number=row.number, partner_id=row.partner_id, kind=KIND, purpose=row.purpose,
                   cycle=row.cycle, tier=row.tier, amount_micros=row.amount_micros,
                   lines=[InvoiceLine(description=str(x["description"]), amount_micros=int(x["amount_micros"]),
                                      currency=row.currency)
                          for x in row.lines],
                   created_at=row.created_at, pdf_url=f"/v1/account/invoices/{row.id}/pdf", currency=row.currency)


def amount_text(micros: int, currency: str) -> str:
    """Two decimals: invoice amounts are whole cents (they were charged to a card)."""
    sign = "-" if micros < 0 else ""
    cents = (abs(micros) + 5_000) // 10_000
    return f"{sign}{cents // 100:,}.{cents % 100:02d} {currency}"


def _latin1(text: str) -> str:
    # The core PDF fonts are Latin-1; a partner name outside it must not break the document.
    return text.encode("latin-1", "replace").decode("latin-1")


def render_pdf(row: InvoiceRow, partner_name: str, issuer: str = "Platform") -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(f"Invoice {row.number}")
    pdf.set_creator("controlplane")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, _latin1(f"{issuer} - subscription invoice"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    for label, value in (("Invoice number", row.number), ("Issued", row.created_at.strftime("%Y-%m-%d %H:%M UTC")),
                         ("Billed to", f"{partner_name} ({row.partner_id})"), ("Cycle", row.cycle),
                         ("Plan", row.tier.value.title()), ("Status", "Paid by card")):
        pdf.cell(45, 7, _latin1(label))
        pdf.cell(0, 7, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(140, 8, "Description", border="B")
    pdf.cell(0, 8, "Amount", border="B", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    for line in row.lines:
        pdf.cell(140, 8, _latin1(str(line["description"])))
        pdf.cell(0, 8, amount_text(int(line["amount_micros"]), row.currency), align="R", new_x="LMARGIN",
                 new_y="NEXT")
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(140, 9, "Total", border="T")
    pdf.cell(0, 9, amount_text(row.amount_micros, row.currency), border="T", align="R", new_x="LMARGIN",
             new_y="NEXT")
    return bytes(pdf.output())
