"""The Must-show invoice paid and delivered end to end (issue 15, Must show 3): the held-out
scenario's invoice (Must show 1: a Flat $99 profile, 7 extensions, 3 DIDs, 620 minutes of real
and synthetic calls, 8.5 % tax -> 144.06 + 12.25 = 156.31), made by the daemon's invoice job,
paid by the tenant's card through localstripe when issued -> Paid, the `invoice.paid` webhook
delivered signed, and the invoice mailed to the tenant with its PDF (the partner's brand name and
the total read back out of the PDF) through a real SMTP server (aiosmtpd).

The tenant and its usage are set up as in test_invoice_scenario_e2e.py (the same profile, units,
jurisdiction, real calls through Asterisk and the same test clock); this module adds what the
payment and the delivery need: localstripe, a webhook receiver, aiosmtpd, the partner's brand and
logo, and the tenant's saved card. All on loopback, the whole daemon in-process.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from account_support import activate_and_fund, session_requester
from harness import calls_config, daemon_beside, free_port
from localstripe_support import LocalStripe, localstripe  # noqa: F401  (fixture)
from pdf_support import pdf_images, pdf_text
from PIL import Image
from smtp_support import SmtpServer, smtp_server
from test_invoice_scenario_e2e import BILLABLE_S, REAL_CALLS, scenario_period, scenario_tenant
from test_limits import wait_for
from webhooks_support import Receiver, receiver

from controlplane.collection.charges import idempotency_key
from controlplane.config import AccountConfig, HttpConfig, MailConfig, WebhooksConfig
from controlplane.invoices.http import invoice_services
from controlplane.tenants.http import tenant_services
from controlplane.tenants.models import PartnerCreate, PartnerTier
from controlplane.webhooks import signing

pytestmark = [pytest.mark.e2e]
SERVICE_TOKEN = "service-token-invoice-paid"
PLATFORM_TOKEN = "platform-token-invoice-paid"
BRAND = "Acme Phones"
BILLING = "ap@dental.example"
SUBTOTAL, TAX, TOTAL = 144_060_000, 12_250_000, 156_310_000  # the figures


@dataclass
class World:
    pool: asyncpg.Pool
    app: Any
    base: str
    partner: str
    tenant: str
    period: tuple[datetime, datetime]
    smtp: SmtpServer
    hooks: Receiver
    hook_secret: str = ""

    async def rpc(self, method: str, path: str, json_body: Any = None) -> tuple[int, Any, bytes]:
        headers = {"Authorization": f"Bearer {SERVICE_TOKEN}", "X-Partner-Id": self.partner}
        async with aiohttp.ClientSession() as http, http.request(method, self.base + path, json=json_body,
                                                                 headers=headers) as response:
            raw = await response.read()
            return response.status, json.loads(raw) if raw and "json" in response.content_type else None, raw

    async def scenario_rpc(self, method: str, path: str, json_body: Any = None) -> tuple[int, Any]:
        status, body, _ = await self.rpc(method, path, json_body)
        return status, body


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (240, 80), (170, 51, 0)).save(buffer, "PNG")
    return buffer.getvalue()


async def _brand(w: World) -> None:
    status, body, _ = await w.rpc("PUT", "/v1/account/brand", {
        "brand_name": BRAND, "from_email": "billing@acme.example", "support_email": "help@acme.example",
        "statement_descriptor": "ACME PHONES", "primary_color": "#aa3300"})
    assert status == 200, body
    async with aiohttp.ClientSession() as http, http.put(
            w.base + "/v1/account/brand/logo", data=_png(),
            headers={"Authorization": f"Bearer {SERVICE_TOKEN}", "X-Partner-Id": w.partner,
                     "Content-Type": "image/png"}) as response:
        assert response.status == 200, await response.text()
    status, body, _ = await w.rpc("POST", "/v1/webhook-endpoints", {
        "url": w.hooks.url("/acme/hooks"), "event_types": ["invoice.created", "invoice.paid"]})
    assert status == 201, body
    w.hook_secret = body["secrets"]["signing_secret"]


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, database_dsn: str, pool: asyncpg.Pool,
                localstripe: LocalStripe) -> AsyncIterator[World]:  # noqa: F811
    async with smtp_server() as smtp, receiver() as hooks:
        config = calls_config(
            tmp_path_factory.mktemp("invoice-paid"), instance=f"invpd{os.getpid()}", dsn=database_dsn,
            payments=localstripe.config(),
            http=HttpConfig(port=free_port(), service_token=SERVICE_TOKEN, platform_token=PLATFORM_TOKEN),
            webhooks=WebhooksConfig(secret_key="invoice-paid-webhooks-key", allow_loopback=True, timeout=5.0),
            mail=MailConfig(host=smtp.host, port=smtp.port, from_address="noreply@platform.test", timeout=5.0),
            account=AccountConfig(unit_fee_interval_s=3600.0, trial_expiry_interval_s=3600.0))
        async with daemon_beside(config, database_dsn) as beside:
            app, base = beside.app, f"http://127.0.0.1:{config.http.port}"
            tenants = app[tenant_services]
            partner = (await tenants.create_partner(PartnerCreate(name="Acme Voice",
                                                                  tier=PartnerTier.BUSINESS))).id
            async with aiohttp.ClientSession() as http:
                await activate_and_fund(session_requester(http, base), partner, platform_token=PLATFORM_TOKEN,
                                        micros=100_000_000)
            w = World(pool, app, base, partner, "", await scenario_period(), smtp, hooks)
            await _brand(w)
            w.tenant = await scenario_tenant(beside, pool, partner, w.scenario_rpc, w.period, sip_prefix="invpd",
                                             first_did=7200)
            yield w


async def test_the_scenario_invoice_is_paid_by_card_announced_signed_and_mailed_with_its_pdf(
        world: World, localstripe: LocalStripe) -> None:  # noqa: F811
    w = world
    status, body, _ = await w.rpc("POST", f"/v1/tenants/{w.tenant}/payment-methods",
                                  {"payment_method_id": localstripe.card()})
    assert status == 201, body

    # The daemon's invoice job at the period's end: the scenario's invoice, issued; collection
    # charges the saved card and invoice delivery mails it, both on signals.invoice_issued.
    start, end = w.period
    report = await w.app[invoice_services].run_job(end + timedelta(minutes=5))
    assert report.errors == []
    [invoice_id] = [r["id"] for r in await w.pool.fetch("SELECT id FROM tenant_invoices WHERE tenant_id = $1",
                                                        w.tenant)]
    status, invoice, _ = await w.rpc("GET", f"/v1/invoices/{invoice_id}")
    assert status == 200, invoice
    assert (invoice["subtotal_micros"], invoice["tax_micros"], invoice["total_micros"]) == (SUBTOTAL, TAX, TOTAL)
    number = invoice["number"]

    # Paid: the card charged once through localstripe, the total in cents.
    async def paid() -> bool:
        return await w.pool.fetchval("SELECT status FROM tenant_invoices WHERE id = $1", invoice_id) == "PAID"
    await wait_for(paid, 20, "the invoice paid")
    assert await w.pool.fetchval("SELECT paid_micros FROM tenant_invoices WHERE id = $1", invoice_id) == TOTAL
    [reference] = [r["reference"] for r in await w.pool.fetch(
        "SELECT reference FROM collection_charges WHERE invoice_id = $1", invoice_id)]
    [intent] = localstripe.intents_for(idempotency_key(w.partner, reference))
    assert (intent.amount, intent.currency, intent.status) == (TOTAL // 10_000, "usd", "succeeded")

    # invoice.paid delivered to the partner's endpoint, signed with its secret over "timestamp.body".
    async def delivered() -> list[Any]:
        return [r for r in w.hooks.at("/acme/hooks") if json.loads(r.body)["type"] == "invoice.paid"]
    [hook] = await wait_for(delivered, 30, "the invoice.paid webhook")
    headers = {k.lower(): v for k, v in hook.headers.items()}
    timestamp = int(headers[signing.TIMESTAMP_HEADER.lower()])
    assert headers[signing.SIGNATURE_HEADER.lower()] == signing.signature(w.hook_secret, timestamp, hook.body)
    assert headers[signing.SIGNATURE_HEADER.lower()] != signing.signature("whsec_wrong", timestamp, hook.body)
    event = json.loads(hook.body)
    assert headers[signing.ID_HEADER.lower()] == event["id"]
    assert (event["partner_id"], event["data"]["invoice_id"], event["data"]["number"]) == (
        w.partner, invoice_id, number)
    assert (event["data"]["paid_micros"], event["data"]["currency"]) == (TOTAL, "USD")

    # The invoice mail, received by the SMTP server from the partner's brand, with the PDF attached.
    async def mailed() -> list[Any]:
        return [m for m in w.smtp.messages if m.rcpt_tos == [BILLING] and number in str(m.message["Subject"])]
    [mail] = await wait_for(mailed, 30, "the invoice mail")
    assert mail.message["From"] == f"{BRAND} <billing@acme.example>"
    assert mail.message["Subject"] == f"{BRAND} invoice {number}: 156.31 USD"
    [(filename, content_type, pdf)] = mail.attachments()
    assert (filename, content_type) == (f"{number}.pdf", "application/pdf")
    text = pdf_text(pdf)
    assert BRAND in text and "Total 156.31 USD" in text and f"No. {number}" in text
    assert "Subtotal 144.06 USD" in text and "Pulaski County (8.5%) 12.25 USD" in text
    assert "Card statements show: ACME PHONES" in text and "Support: help@acme.example" in text
    assert pdf_images(pdf) == 1  # the partner's logo

    # The PDF now says Paid, nothing due; the evidence carries every billable call of the period,
    # the three made through Asterisk among them, 620 minutes in all.
    status, _, raw = await w.rpc("GET", f"/v1/invoices/{invoice_id}/pdf")
    assert status == 200
    now_text = pdf_text(raw)
    assert "Status Paid" in now_text and "Paid 156.31 USD" in now_text and "Amount due 0.00 USD" in now_text
    status, _, raw = await w.rpc("GET", f"/v1/invoices/{invoice_id}/evidence")
    assert status == 200
    archive = zipfile.ZipFile(io.BytesIO(raw))
    rows = list(csv.DictReader(io.StringIO(archive.read("calls.csv").decode())))
    expected = await w.pool.fetch("SELECT id FROM call_records WHERE tenant_id = $1 AND started_at >= $2"
                                  " AND started_at < $3 AND billable_s > 0 ORDER BY started_at, id",
                                  w.tenant, start, end)
    assert [r["id"] for r in rows] == [r["id"] for r in expected] and len(rows) > REAL_CALLS
    assert sum(int(r["billable_s"]) for r in rows) == BILLABLE_S
    record = json.loads(archive.read("invoice.json"))
    assert record["invoice"]["status"] == "PAID" and record["usage"][0]["billable_seconds"] == BILLABLE_S
