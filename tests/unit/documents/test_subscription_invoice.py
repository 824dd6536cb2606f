"""The partner's subscription invoices go through the same renderer (controlplane/account)."""

from __future__ import annotations

from datetime import UTC, datetime

from pdf_support import pdf_text

from cdr_ingest.tiers import Tier
from controlplane.account.invoices import render_pdf
from controlplane.account.store import InvoiceRow


def test_a_subscription_invoice_renders_with_its_number_plan_lines_and_total() -> None:
    row = InvoiceRow(id="inv_1", number="SUB-2026-000123", partner_id="ptr_acme", reference="cycle:2026-12",
                     purpose="cycle", cycle="2026-12", tier=Tier.BUSINESS, amount_micros=1_007_750_000,
                     currency="USD",
                     lines=[{"description": "Business platform fee, December 2026", "amount_micros": 999_000_000},
                            {"description": "5 DIDs above the included", "amount_micros": 8_750_000}],
                     charge_reference="cycle:2026-12", provider_charge_id="pi_1",
                     created_at=datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
    text = pdf_text(render_pdf(row, "Acme Voice"))
    for expected in ("Subscription invoice", "No. SUB-2026-000123", "Platform", "Billed to Acme Voice",
                     "Account ptr_acme", "Issued 2026-12-01", "Cycle 2026-12", "Plan Business", "Status Paid by card",
                     "Business platform fee, December 2026 999.00 USD", "5 DIDs above the included 8.75 USD",
                     "Total 1,007.75 USD", "Paid 1,007.75 USD", "Amount due 0.00 USD"):
        assert expected in text, (expected, text)
