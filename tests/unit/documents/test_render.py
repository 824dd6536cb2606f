"""The one renderer: the text a reader extracts, logos, pagination, and exact amounts."""

from __future__ import annotations

import io
from datetime import date

import pytest
from pdf_support import pdf_images, pdf_pages, pdf_text
from PIL import Image
from pypdf import PdfReader

from controlplane.documents.models import InvoiceDocument, Issuer, Line, Logo, Recipient, TaxLine, Title
from controlplane.documents.render import render
from controlplane.documents.text import ink_on, latin1, money, percent, rgb


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (240, 80), (200, 40, 20)).save(buffer, "PNG")
    return buffer.getvalue()


def _content(pdf: bytes) -> bytes:
    """The first page's drawing operators, decompressed."""
    return bytes(PdfReader(io.BytesIO(pdf)).pages[0].get_contents().get_data())  # type: ignore[union-attr]


SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 40" width="100" height="40">'
       b'<rect width="100" height="40" fill="#c82814"/></svg>')


def _doc(lines: tuple[Line, ...] | None = None, logo: Logo | None = None, **changes: object) -> InvoiceDocument:
    # The Must-show figures: 144.06 + 8.5 % tax 12.25 = 156.31.
    values: dict[str, object] = dict(
        title=Title.INVOICE, number="ACME-000042",
        issuer=Issuer(brand_name="Acme Phones", support_email="help@acme.example", statement_descriptor="ACME PHONES",
                      primary_color="#aa3300", logo=logo),
        recipient=Recipient(name="Dental Co", email="billing@dental.example", account="1042"),
        issued_on=date(2026, 12, 1), currency="USD",
        lines=lines if lines is not None else (
            Line("Flat Rate Starter base fee", 99_000_000, "1", 99_000_000),
            Line("Extensions above the 5 included", 40_000_000, "2", 20_000_000),
            Line("Local DIDs above the 2 included (prorated)", 2_060_000, "0.5161", 4_000_000),
            Line("Minutes above the 500 included", 3_000_000, "120", 25_000)),
        subtotal_micros=144_060_000, tax=TaxLine("Pulaski County", "8.5", 12_250_000), total_micros=156_310_000,
        due_on=date(2026, 12, 16), period_start=date(2026, 11, 1), period_end=date(2026, 11, 30), status="Sent")
    values.update(changes)
    return InvoiceDocument(**values)  # type: ignore[arg-type]


def test_the_extracted_text_has_the_brand_the_lines_the_tax_and_the_total() -> None:
    pdf = render(_doc())
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    for expected in ("Invoice", "No. ACME-000042", "Acme Phones", "Support: help@acme.example",
                     "Card statements show: ACME PHONES", "Billed to Dental Co", "billing@dental.example",
                     "Period 2026-11-01 to 2026-11-30", "Due 2026-12-16", "Status Sent",
                     "Extensions above the 5 included 2 20.00 USD 40.00 USD", "120 0.025 USD 3.00 USD",
                     "Subtotal 144.06 USD", "Pulaski County (8.5%) 12.25 USD", "Total 156.31 USD",
                     "Amount due 156.31 USD"):
        assert expected in text, (expected, text)


def test_paid_and_refunded_amounts_change_what_is_due() -> None:
    text = pdf_text(render(_doc(paid_micros=156_310_000, credited_micros=10_000_000, status="Paid")))
    assert "Paid 156.31 USD" in text and "Refunded 10.00 USD" in text and "Amount due 0.00 USD" in text
    partial = pdf_text(render(_doc(paid_micros=100_000_000, status="Partially paid")))
    assert "Amount due 56.31 USD" in partial


def test_a_credit_note_prints_what_it_credits_and_no_amount_due() -> None:
    text = pdf_text(render(_doc(title=Title.CREDIT_NOTE, number="ACME-CN-000001", refers_to="ACME-000042",
                                lines=(Line("Refund of unused minutes", 3_000_000),), subtotal_micros=3_000_000,
                                tax=None, total_micros=3_000_000, due_on=None, status=None)))
    assert "Credit note" in text and "Credits invoice ACME-000042" in text and "Total 3.00 USD" in text
    assert "Amount due" not in text and "Quantity" not in text  # lines without quantities: two columns


def test_with_a_png_logo_the_pdf_carries_the_image_and_without_none() -> None:
    without = render(_doc())
    with_logo = render(_doc(logo=Logo("image/png", _png())))
    assert pdf_images(without) == 0 and pdf_images(with_logo) == 1
    assert "Acme Phones" in pdf_text(with_logo)  # the brand name is printed beside the logo


def test_an_svg_logo_is_drawn_and_an_unreadable_one_is_left_out() -> None:
    plain = render(_doc())
    svg = render(_doc(logo=Logo("image/svg+xml", SVG)))
    assert b"0.7843 0.1569 0.0784 rg" in _content(svg)  # the SVG's fill (#c82814), drawn as vectors
    assert b"0.7843 0.1569 0.0784 rg" not in _content(plain)
    broken = render(_doc(logo=Logo("image/png", b"\x89PNG not really")))
    assert "Total 156.31 USD" in pdf_text(broken) and pdf_images(broken) == 0


def test_an_svg_logo_cannot_make_the_renderer_read_a_file() -> None:
    sneaky = (b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10"'
              b' height="10"><image xlink:href="file:///etc/hostname" width="10" height="10"/></svg>')
    pdf = render(_doc(logo=Logo("image/svg+xml", sneaky)))
    with open("/etc/hostname", "rb") as f:
        assert f.read().strip() not in pdf
    assert "Total 156.31 USD" in pdf_text(pdf)


def test_a_long_list_of_lines_paginates_with_the_heading_on_every_page() -> None:
    lines = tuple(Line(f"Custom item number {i:03d}", 1_000_000, "1", 1_000_000) for i in range(150))
    pdf = render(_doc(lines=lines, subtotal_micros=150_000_000, tax=None, total_micros=150_000_000))
    pages = pdf_pages(pdf)
    assert len(pages) >= 3
    for n, page in enumerate(pages, 1):
        assert f"page {n} of {len(pages)}" in page
        assert "Description Quantity Unit price Amount" in page
    text = "\n".join(pages)
    assert all(text.count(f"Custom item number {i:03d} ") == 1 for i in range(150))
    assert "Total 150.00 USD" in pages[-1] and "Total" not in pages[0].split("Custom item")[0]


def test_a_long_description_wraps_inside_its_cell() -> None:
    long = "Porting of 25 numbers from the previous carrier, including the expedite fee and the LOA review " * 3
    text = pdf_text(render(_doc(lines=(Line(long, 99_000_000, "1", 99_000_000),), subtotal_micros=99_000_000,
                                tax=None, total_micros=99_000_000)))
    assert "LOA review" in text and "Total 99.00 USD" in text


def test_the_same_record_renders_the_same_bytes() -> None:
    assert render(_doc()) == render(_doc())


def test_names_outside_latin1_print_with_a_replacement_not_an_error() -> None:
    text = pdf_text(render(_doc(issuer=Issuer(brand_name="Café Téléphone ☎"))))
    assert "Café Téléphone ?" in text


@pytest.mark.parametrize(("micros", "text"), [
    (156_310_000, "156.31 USD"), (0, "0.00 USD"), (25_000, "0.025 USD"), (1, "0.000001 USD"),
    (-3_000_000, "-3.00 USD"), (1_234_567_890_000, "1,234,567.89 USD")])
def test_money_is_printed_exactly(micros: int, text: str) -> None:
    assert money(micros, "USD") == text


def test_small_text_helpers() -> None:
    assert (percent("8.5"), percent("8.500"), percent("10"), percent("x")) == ("8.5%", "8.5%", "10%", "x%")
    assert latin1("a☎b") == "a?b"
    assert rgb("#2563eb") == (37, 99, 235) and rgb(None) == rgb("blue") == (37, 99, 235)
    assert ink_on((37, 99, 235)) == (255, 255, 255) and ink_on((255, 255, 102)) == (0, 0, 0)
