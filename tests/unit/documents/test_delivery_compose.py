"""Invoice delivery's pure parts: the tenant invoice as printed, the mail's values, the evidence zip."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pdf_support import pdf_text

from cdr_ingest.records import CallRecord
from controlplane.collection.models import CreditNoteRecord, CreditNoteStatus
from controlplane.documents.render import render
from controlplane.http.exports import csv_cell
from controlplane.invoice_delivery import compose, evidence
from controlplane.invoice_delivery.compose import Billed, BrandFacts
from controlplane.invoices.models import Invoice, InvoiceLine, InvoiceStatus

TENANT = Billed(id="ten_1", name="Dental Co", sip_prefix="1042", billing_email="billing@dental.example",
                timezone="America/Los_Angeles")
BRAND = BrandFacts(brand_name="Acme Phones", support_email="help@acme.example", statement_descriptor="ACME PHONES",
                   primary_color="#aa3300", logo=None)


def _invoice(**changes: object) -> Invoice:
    values: dict[str, object] = dict(
        id="inv_1", partner_id="ptr_1", tenant_id="ten_1", number="INV-000007", status=InvoiceStatus.SENT,
        # The tenant's November, in Los Angeles (UTC-8 in winter, UTC-7 until Nov 1 02:00).
        period_start=datetime(2026, 11, 1, 7, tzinfo=UTC), period_end=datetime(2026, 12, 1, 8, tzinfo=UTC),
        issued_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC), due_at=datetime(2026, 12, 16, 9, 30, tzinfo=UTC),
        currency="USD", subtotal_micros=144_060_000, tax_micros=12_250_000, total_micros=156_310_000,
        paid_micros=0, credited_micros=0,
        lines=(InvoiceLine("base_fee", "Base fee", "1", 99_000_000, 99_000_000),
               InvoiceLine("minutes_local", "Local minutes above 500 included", "120", 25_000, 3_000_000)),
        tax_name="Pulaski", tax_rate="8.5")
    values.update(changes)
    return Invoice(**values)  # type: ignore[arg-type]


def test_the_invoice_is_dated_in_the_tenant_time_zone_and_names_the_brand() -> None:
    doc = compose.document(_invoice(issued_at=datetime(2026, 12, 1, 3, tzinfo=UTC)), TENANT, BRAND)
    assert (doc.period_start.isoformat(), doc.period_end.isoformat()) == ("2026-11-01", "2026-11-30")  # type: ignore[union-attr]
    assert doc.issued_on.isoformat() == "2026-11-30"  # 03:00 UTC is still the 30th in Los Angeles
    assert doc.issuer.brand_name == "Acme Phones" and doc.recipient.account == "1042"
    text = pdf_text(render(doc))
    assert "Acme Phones" in text and "Pulaski (8.5%) 12.25 USD" in text and "Total 156.31 USD" in text
    assert "Status Sent" in text


def test_an_unknown_time_zone_falls_back_to_utc_and_a_draft_has_no_document() -> None:
    doc = compose.document(_invoice(), Billed(**{**TENANT.__dict__, "timezone": "Mars/Olympus"}), BRAND)
    assert doc.issued_on.isoformat() == "2026-12-01"
    with pytest.raises(ValueError, match="not issued"):
        compose.document(_invoice(number=None, issued_at=None, status=InvoiceStatus.DRAFT), TENANT, BRAND)


def test_an_invoice_without_tax_prints_no_tax_line() -> None:
    doc = compose.document(_invoice(tax_name=None, tax_rate=None, tax_micros=0, total_micros=144_060_000), TENANT,
                           BRAND)
    assert doc.tax is None and "Pulaski" not in pdf_text(render(doc))


def test_the_mail_values_and_file_name() -> None:
    view = compose.mail_view(compose.document(_invoice(status=InvoiceStatus.PARTIALLY_PAID,
                                                       paid_micros=100_000_000), TENANT, BRAND))
    assert (view.number, view.total, view.amount_due, view.due_on, view.status) == (
        "INV-000007", "156.31 USD", "56.31 USD", "2026-12-16", "Partially paid")
    assert view.period == "2026-11-01 to 2026-11-30"
    assert compose.filename("ACME/2026 #7") == "ACME_2026__7.pdf"


def _call(n: int, call_class: str, billable_s: int, retail: int | None, callee: str = "+15015550100") -> CallRecord:
    at = datetime(2026, 11, 2, 10, n, tzinfo=UTC)
    return CallRecord(id=f"call_{n}", linkedid=f"l{n}", tenant_id="ten_1", partner_id="ptr_1", direction="outbound",
                      caller="1042100", callee=callee, did=None, extension="100", started_at=at, answered_at=at,
                      ended_at=at, duration_s=billable_s, answered_s=billable_s, billable_s=billable_s,
                      wholesale_billable_s=billable_s, disposition="ANSWERED", hangup_cause=16,
                      call_class=call_class, wholesale_micros=1, retail_micros=retail, wholesale_rate_id=None,
                      retail_rate_id=None)


def test_the_evidence_zip_holds_the_invoice_its_pdf_the_calls_and_a_manifest_of_hashes() -> None:
    invoice = _invoice()
    doc = compose.document(invoice, TENANT, BRAND)
    pdf = render(doc)
    calls = [_call(1, "local", 60, 0), _call(2, "local", 90, 12_500), _call(3, "international", 30, 150_000,
                                                                           callee="=HYPERLINK(\"x\")")]
    found = evidence.Evidence(invoice=invoice, tenant=TENANT, issuer="Acme Phones", pdf_name="INV-000007.pdf",
                              pdf=pdf, calls=calls, generated_at=datetime(2026, 12, 20, 12, tzinfo=UTC))
    data = evidence.pack(found, csv_cell)
    assert evidence.pack(found, csv_cell) == data  # the same evidence, the same bytes
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.namelist() == ["invoice.json", "INV-000007.pdf", "calls.csv", "manifest.json"]
    record = json.loads(archive.read("invoice.json"))
    assert record["invoice"]["number"] == "INV-000007" and record["invoice"]["total_micros"] == 156_310_000
    assert record["invoice"]["lines"][1]["quantity"] == "120" and record["tenant"]["sip_prefix"] == "1042"
    assert record["calls"] == 3 and record["usage"] == [
        {"call_class": "international", "calls": 1, "billable_seconds": 30, "retail_micros": 150_000},
        {"call_class": "local", "calls": 2, "billable_seconds": 150, "retail_micros": 12_500}]
    assert archive.read("INV-000007.pdf") == pdf
    rows = list(csv.DictReader(io.StringIO(archive.read("calls.csv").decode())))
    assert [r["id"] for r in rows] == ["call_1", "call_2", "call_3"] and rows[1]["billable_s"] == "90"
    assert rows[2]["callee"] == "'=HYPERLINK(\"x\")"  # a formula is data, never run by a spreadsheet
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["invoice_id"] == "inv_1" and [f["name"] for f in manifest["files"]] == archive.namelist()[:3]
    for entry in manifest["files"]:
        body = archive.read(entry["name"])
        assert entry["sha256"] == hashlib.sha256(body).hexdigest() and entry["bytes"] == len(body)


def test_a_credit_note_names_the_invoice_it_credits_and_the_usage_credited() -> None:
    note = CreditNoteRecord(credit_note_id="cn_1", partner_id="ptr_1", tenant_id="ten_1", invoice_id="inv_1",
                            reference="refund:1", status=CreditNoteStatus.SUCCEEDED, number="CN-000003",
                            amount_micros=20_000_000, usage_credit_micros=3_000_000, currency="USD",
                            reason="Outage on Nov 3", failure=None, created_at=datetime(2026, 12, 5, tzinfo=UTC),
                            issued_at=datetime(2026, 12, 5, 18, tzinfo=UTC))
    text = pdf_text(render(compose.credit_note_document(note, "INV-000007", TENANT, BRAND)))
    for expected in ("Credit note", "No. CN-000003", "Acme Phones", "Credits invoice INV-000007",
                     "Refund of invoice INV-000007 20.00 USD", "Total 20.00 USD",
                     "Of which usage credited on the next invoice: 3.00 USD.", "Reason: Outage on Nov 3",
                     "Issued 2026-12-05"):
        assert expected in text, (expected, text)
    assert "Amount due" not in text
    with pytest.raises(ValueError, match="not issued"):
        compose.credit_note_document(replace(note, number=None, status=CreditNoteStatus.PENDING, issued_at=None),
                                     "INV-000007", TENANT, BRAND)
