"""``InvoiceDocument`` -> PDF bytes (fpdf2, core fonts: the text is extractable and searchable).

The layout: the issuer's logo and brand block, the title and number, who is billed, the dates,
the lines (a table whose heading repeats on every page, so a long list paginates), the totals
and a footer naming the document on each page.
"""

from __future__ import annotations

import io
import warnings
from datetime import UTC, datetime, time

from fpdf import FPDF
from fpdf.enums import ResourceAccessPolicy
from fpdf.fonts import FontFace

from controlplane.documents.models import InvoiceDocument, Logo, Title
from controlplane.documents.text import ink_on, latin1, money, percent, rgb

LOGO_HEIGHT_MM = 16.0
LOGO_MAX_WIDTH_MM = 60.0
_GREY = (90, 90, 90)


class _Pdf(FPDF):
    def __init__(self, document: InvoiceDocument) -> None:
        super().__init__(format="A4")
        self.document = document
        # A logo (an SVG above all) must never make the renderer read a file or fetch a URL.
        self.resource_access_policy = ResourceAccessPolicy.NONE
        self.set_auto_page_break(True, margin=20)

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font("Helvetica", "", 8)
        self.set_text_color(*_GREY)
        d = self.document
        self.cell(0, 6, latin1(f"{d.issuer.brand_name} - {d.title.value} {d.number} - page {self.page_no()}"
                               f" of {{nb}}"), align="C")
        self.set_text_color(0, 0, 0)


def _logo(pdf: _Pdf, logo: Logo) -> bool:
    """Draw the logo top left; False when fpdf2 cannot read it (the brand name is printed anyway)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fpdf2 warns about SVGs without a viewBox, and copes
            pdf.image(io.BytesIO(logo.data), x=pdf.l_margin, y=pdf.t_margin, w=LOGO_MAX_WIDTH_MM,
                      h=LOGO_HEIGHT_MM, keep_aspect_ratio=True)
    except Exception:  # noqa: BLE001 - a logo fpdf2 cannot draw must not cost anyone their invoice
        return False
    return True


def _header(pdf: _Pdf, d: InvoiceDocument) -> None:
    color = rgb(d.issuer.primary_color)
    top = pdf.t_margin
    has_logo = d.issuer.logo is not None and _logo(pdf, d.issuer.logo)
    # The title and number, right-aligned beside the logo.
    pdf.set_xy(pdf.l_margin, top)
    pdf.set_font("Helvetica", "B", 20)
    pdf.set_text_color(*color)
    pdf.cell(0, 10, latin1(d.title.value), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_font("Helvetica", "", 11)
    pdf.cell(0, 6, latin1(f"No. {d.number}"), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(pdf.get_y(), top + (LOGO_HEIGHT_MM if has_logo else 0)) + 4)
    # The issuer's brand block.
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 7, latin1(d.issuer.brand_name), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    if d.issuer.support_email:
        pdf.cell(0, 5, latin1(f"Support: {d.issuer.support_email}"), new_x="LMARGIN", new_y="NEXT")
    if d.issuer.statement_descriptor:
        pdf.cell(0, 5, latin1(f"Card statements show: {d.issuer.statement_descriptor}"), new_x="LMARGIN",
                 new_y="NEXT")
    pdf.set_draw_color(*color)
    pdf.set_line_width(0.6)
    pdf.line(pdf.l_margin, pdf.get_y() + 3, pdf.w - pdf.r_margin, pdf.get_y() + 3)
    pdf.set_line_width(0.2)
    pdf.set_draw_color(0, 0, 0)
    pdf.ln(7)


def _facts(d: InvoiceDocument) -> list[tuple[str, str]]:
    facts = [("Billed to", d.recipient.name)]
    if d.recipient.account:
        facts.append(("Account", d.recipient.account))
    if d.recipient.email:
        facts.append(("Email", d.recipient.email))
    if d.refers_to:
        facts.append(("Credits invoice", d.refers_to))
    facts.append(("Issued", d.issued_on.isoformat()))
    if d.due_on is not None:
        facts.append(("Due", d.due_on.isoformat()))
    if d.period_start is not None and d.period_end is not None:
        facts.append(("Period", f"{d.period_start.isoformat()} to {d.period_end.isoformat()}"))
    facts.extend(d.facts)
    if d.status:
        facts.append(("Status", d.status))
    return facts


def _lines(pdf: _Pdf, d: InvoiceDocument) -> None:
    color = rgb(d.issuer.primary_color)
    detailed = any(line.quantity is not None or line.unit_micros is not None for line in d.lines)
    widths = (100, 25, 30, 35) if detailed else (150, 40)
    heading = FontFace(emphasis="BOLD", color=ink_on(color), fill_color=color)
    pdf.set_font("Helvetica", "", 10)
    with pdf.table(col_widths=widths, width=sum(widths), align="LEFT", headings_style=heading,
                   borders_layout="HORIZONTAL_LINES", text_align="LEFT", line_height=6,
                   repeat_headings=1) as table:
        row = table.row()
        row.cell("Description")
        if detailed:
            row.cell("Quantity", align="RIGHT")
            row.cell("Unit price", align="RIGHT")
        row.cell("Amount", align="RIGHT")
        for line in d.lines:
            row = table.row()
            row.cell(latin1(line.description))
            if detailed:
                row.cell(latin1(line.quantity or ""), align="RIGHT")
                row.cell("" if line.unit_micros is None else money(line.unit_micros, d.currency), align="RIGHT")
            row.cell(money(line.amount_micros, d.currency), align="RIGHT")


def _totals(pdf: _Pdf, d: InvoiceDocument) -> None:
    rows: list[tuple[str, int, bool]] = [("Subtotal", d.subtotal_micros, False)]
    if d.tax is not None:
        label = d.tax.name if d.tax.rate_percent is None else f"{d.tax.name} ({percent(d.tax.rate_percent)})"
        rows.append((label, d.tax.amount_micros, False))
    rows.append(("Total", d.total_micros, True))
    if d.title is not Title.CREDIT_NOTE:
        if d.paid_micros:
            rows.append(("Paid", d.paid_micros, False))
        if d.credited_micros:
            rows.append(("Refunded", d.credited_micros, False))
        rows.append(("Amount due", d.amount_due_micros, True))
    pdf.ln(4)
    # Keep the block on one page: a total alone at the top of a page reads as a new document.
    if pdf.get_y() + 8 * len(rows) > pdf.page_break_trigger:
        pdf.add_page()
    label_x = pdf.w - pdf.r_margin - 110
    for label, micros, strong in rows:
        pdf.set_x(label_x)
        pdf.set_font("Helvetica", "B" if strong else "", 11 if strong else 10)
        pdf.cell(70, 7, latin1(label), border="T" if strong else 0)
        pdf.cell(40, 7, money(micros, d.currency), border="T" if strong else 0, align="R", new_x="LMARGIN",
                 new_y="NEXT")


def render(document: InvoiceDocument) -> bytes:
    """The document as PDF bytes. Deterministic for a given record (no creation date inside)."""
    d = document
    pdf = _Pdf(d)
    pdf.set_title(latin1(f"{d.title.value} {d.number}"))
    pdf.set_author(latin1(d.issuer.brand_name))
    pdf.set_creator("controlplane")
    pdf.set_creation_date(datetime.combine(d.issued_on, time(), tzinfo=UTC))
    pdf.add_page()
    _header(pdf, d)
    pdf.set_font("Helvetica", "", 10)
    for label, value in _facts(d):
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(35, 6, latin1(label))
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(0, 6, latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(5)
    _lines(pdf, d)
    _totals(pdf, d)
    if d.notes:
        pdf.ln(6)
        pdf.set_font("Helvetica", "", 9)
        for note in d.notes:
            pdf.multi_cell(0, 5, latin1(note), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
