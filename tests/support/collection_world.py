"""Collection over real HTTP, PostgreSQL and localstripe: one of each per test module."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from localstripe_support import LocalStripe, localstripe_server

from controlplane.apikeys.plugin import PLUGIN as APIKEYS
from controlplane.audit.plugin import PLUGIN as AUDIT
from controlplane.collection.plugin import PLUGIN as COLLECTION
from controlplane.collection.providers import Resolver
from controlplane.config import Config, PaymentsConfig, WebhooksConfig
from controlplane.events.plugin import PLUGIN as EVENTS
from controlplane.http.app import make_app
from controlplane.invoices import store as invoices
from controlplane.invoices.models import Invoice, InvoiceLine
from controlplane.plugins import Context
from controlplane.shared.ids import new_id
from controlplane.signals import InvoiceIssued, InvoicePaid, Signals
from controlplane.tenants.plugin import PLUGIN as TENANTS

TOKEN = "portal-token"
USD = 1_000_000


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    with localstripe_server() as server:
        yield server


@dataclass
class World:
    pool: asyncpg.Pool
    client: TestClient[web.Request, web.Application]
    signals: Signals
    stripe: LocalStripe
    config: Config
    paid: list[InvoicePaid] = field(default_factory=list)

    async def call(self, method: str, path: str, partner: str, json: Any = None) -> tuple[int, Any]:
        resp = await self.client.request(method, path, json=json, headers={
            "Authorization": f"Bearer {TOKEN}", "X-Partner-Id": partner})
        text = await resp.text()
        return resp.status, (await resp.json(content_type=None) if text else None)

    def resolver(self) -> Resolver:
        return Resolver.from_config(self.config)

    async def partner(self) -> str:
        partner_id = new_id("ptr")
        await self.pool.execute("INSERT INTO partners (id, name, tier) VALUES ($1, 'Reseller', 'BUSINESS')",
                                partner_id)
        return partner_id

    async def tenant(self, partner_id: str) -> str:
        tenant_id = new_id("ten")
        await self.pool.execute(
            "INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status)"
            " VALUES ($1, $2, 'Acme Dental', $3, 'billing@acme.test', 'ACTIVE')",
            tenant_id, partner_id, "t" + secrets.token_hex(4))
        return tenant_id

    async def save_card(self, partner_id: str, tenant_id: str, number: str) -> str:
        """What the portal does: a SetupIntent, Stripe.js confirms it with a new card, then attach."""
        status, intent = await self.call("POST", f"/v1/tenants/{tenant_id}/payment-methods/setup-intent", partner_id)
        assert status == 201, intent
        method_id = self.stripe.card(number)
        self.stripe.client().v1.setup_intents.confirm(intent["setup_intent_id"], params={
            "payment_method": method_id, "client_secret": intent["secrets"]["client_secret"]})
        status, saved = await self.call("POST", f"/v1/tenants/{tenant_id}/payment-methods", partner_id,
                                        {"payment_method_id": method_id})
        assert status == 201, saved
        return method_id

    async def issue(self, partner_id: str, tenant_id: str, lines: list[tuple[str, int]], tax_micros: int = 0,
                    *, send: bool = True) -> Invoice:
        """An issued (SENT) invoice, and ``signals.invoice_issued`` as the invoices job sends it."""
        subtotal = sum(amount for _, amount in lines)
        new = invoices.NewInvoice(
            id=invoices.new_id(), partner_id=partner_id, tenant_id=tenant_id,
            period_start=datetime(2026, 5, 1, tzinfo=UTC), period_end=datetime(2026, 6, 1, tzinfo=UTC),
            currency="USD", subtotal_micros=subtotal, tax_micros=tax_micros, total_micros=subtotal + tax_micros,
            lines=tuple(InvoiceLine(kind, kind, "1", amount, amount) for kind, amount in lines),
            tax_name="Sales tax" if tax_micros else None, tax_code=None, tax_rate="8.5" if tax_micros else None,
            net_terms_days=15, off_cycle=True)
        async with self.pool.acquire() as conn, conn.transaction():
            await invoices.insert_drafts(conn, [new])
            [issued] = await invoices.issue(conn, [new.id], datetime.now(UTC))
        if send:
            await self.signals.invoice_issued.send(InvoiceIssued(partner_id, tenant_id, issued.id,
                                                                 issued.total_micros))
        return issued

    async def invoice(self, invoice_id: str) -> Invoice:
        found = await invoices.get(self.pool, invoice_id)
        assert found is not None
        return found

    async def events(self, partner_id: str, event_type: str) -> list[dict[str, Any]]:
        """The envelopes, each with its row's tenant (``row_tenant_id``: the envelope does not carry it)."""
        rows = await self.pool.fetch("SELECT body, tenant_id FROM events WHERE partner_id = $1 AND type = $2"
                                     " ORDER BY seq", partner_id, event_type)
        return [{**msgspec.json.decode(r["body"]), "row_tenant_id": r["tenant_id"]} for r in rows]


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool, localstripe: LocalStripe) -> AsyncIterator[World]:
    signals = Signals()
    config = Config(payments=PaymentsConfig(stripe_secret_key=localstripe.secret_key,
                                            stripe_api_base=localstripe.base),
                    webhooks=WebhooksConfig(secret_key="collection-tests-" + "k" * 32))
    paid: list[InvoicePaid] = []

    async def on_paid(p: InvoicePaid) -> None:
        paid.append(p)

    signals.invoice_paid.connect(on_paid)
    context = Context(config=config, pool=pool, signals=signals, payments=localstripe.provider())
    app = make_app(service_token_value=TOKEN, probes=[], plugins=[TENANTS, EVENTS, APIKEYS, AUDIT, COLLECTION],
                   context=context)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield World(pool, client, signals, localstripe, config, paid)
    finally:
        await client.close()
