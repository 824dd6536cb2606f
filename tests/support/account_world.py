"""The account tests' world: a real app (tenants ... payments, wallet, account) on a test
database, localstripe as the card processor, over real HTTP (tests/integration/account)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer
from localstripe_support import LocalStripe

from controlplane.account.plugin import PLUGIN as ACCOUNT
from controlplane.account.services import AccountServices
from controlplane.account import http as account_http
from controlplane.apikeys.plugin import PLUGIN as APIKEYS
from controlplane.audit.plugin import PLUGIN as AUDIT
from controlplane.config import Config, WebhooksConfig
from controlplane.events.plugin import PLUGIN as EVENTS
from controlplane.http.app import make_app
from controlplane.numbers.plugin import PLUGIN as NUMBERS
from controlplane.payments.plugin import PLUGIN as PAYMENTS
from controlplane.payments.stripe_provider import StripeProvider
from controlplane.plugins import Context
from controlplane.signals import PartnerStatusChanged
from controlplane.tenants.plugin import PLUGIN as TENANTS
from controlplane.wallet.plugin import PLUGIN as WALLET
from controlplane.webhooks.plugin import PLUGIN as WEBHOOKS

TOKEN, PLATFORM = "portal-token", "platform-token"


@dataclass
class Reply:
    status: int
    body: Any
    raw: bytes
    content_type: str


@dataclass
class World:
    client: TestClient
    pool: asyncpg.Pool
    stripe: LocalStripe
    provider: StripeProvider
    status_changes: list[PartnerStatusChanged] = field(default_factory=list)

    @property
    def services(self) -> AccountServices:
        return self.client.server.app[account_http.account_services]

    async def call(self, method: str, path: str, *, partner: str | None = None, platform: bool = False,
                   json: Any = None) -> Reply:
        headers = {"Authorization": f"Bearer {PLATFORM if platform else TOKEN}"}
        if partner is not None:
            headers["X-Partner-Id"] = partner
        resp = await self.client.request(method, path, json=json, headers=headers)
        raw = await resp.read()
        body = await resp.json(content_type=None) if raw and "json" in resp.content_type else None
        return Reply(resp.status, body, raw, resp.content_type)

    async def partner(self, tier: str = "STARTER") -> str:
        r = await self.call("POST", "/v1/partners", json={"name": "Acme Voice", "tier": tier})
        assert r.status == 201, r.body
        return str(r.body["id"])

    async def card(self, partner_id: str, number: str = "4242424242424242") -> str:
        method = self.stripe.card(number)
        r = await self.call("POST", "/v1/account/payment-methods", partner=partner_id,
                            json={"payment_method_id": method})
        assert r.status == 201, r.body
        return method

    async def balance(self, partner_id: str) -> int:
        return int(await self.pool.fetchval(
            "SELECT COALESCE((SELECT balance FROM partner_wallets WHERE partner_id = $1), 0)", partner_id))

    async def events(self, partner_id: str, event_type: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT body FROM events WHERE partner_id = $1 AND type = $2 ORDER BY seq",
                                     partner_id, event_type)
        return [dict(json.loads(bytes(r["body"]))["data"]) for r in rows]


@asynccontextmanager
async def world_for(pool: asyncpg.Pool, localstripe: LocalStripe) -> AsyncIterator[World]:
    provider = localstripe.provider()
    config = Config(webhooks=WebhooksConfig(secret_key="account-test-key"), payments=localstripe.config())
    context = Context(config=config, pool=pool, payments=provider)
    changes: list[PartnerStatusChanged] = []

    async def note(change: PartnerStatusChanged) -> None:
        changes.append(change)

    context.signals.partner_status_changed.connect(note)
    app = make_app(service_token_value=TOKEN, platform_token_value=PLATFORM, probes=[],
                   plugins=[TENANTS, EVENTS, WEBHOOKS, NUMBERS, APIKEYS, AUDIT, PAYMENTS, WALLET, ACCOUNT],
                   context=context)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield World(client, pool, localstripe, provider, changes)
    finally:
        await client.close()
