"""A real app with the wallet (and payments, tenants, events, audit) on PostgreSQL and
localstripe, over real HTTP; a clock the auto-recharge tests move."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer
from localstripe_support import CARD_OK, LocalStripe, localstripe  # noqa: F401  (the module's fixture)
from wallet_support import make_active

from controlplane.apikeys.plugin import PLUGIN as APIKEYS
from controlplane.audit.plugin import PLUGIN as AUDIT
from controlplane.config import Config
from controlplane.events.plugin import PLUGIN as EVENTS
from controlplane.http.app import make_app
from controlplane.payments.plugin import PLUGIN as PAYMENTS
from controlplane.plugins import Context
from controlplane.signals import Signals, WalletChanged
from controlplane.tenants.plugin import PLUGIN as TENANTS
from controlplane.wallet.http import wallet_services
from controlplane.wallet.plugin import PLUGIN as WALLET
from controlplane.wallet.plugin import follower_key
from controlplane.wallet.follower import WalletFollower
from controlplane.wallet.services import WalletServices

TOKEN = "portal-token"
PLATFORM = "platform-token"


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(minute=10, second=0, microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any
    text: str


@dataclass
class Api:
    client: TestClient
    services: WalletServices
    follower: WalletFollower
    clock: Clock
    changes: list[WalletChanged]

    async def call(self, method: str, path: str, partner: str | None = None, json: Any = None, *,
                   token: str = TOKEN, params: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None, data: bytes | None = None) -> Reply:
        sent = {"Authorization": f"Bearer {token}", **(headers or {})}
        if partner is not None:
            sent["X-Partner-Id"] = partner
        resp = await self.client.request(method, path, json=json, params=params, headers=sent, data=data)
        text = await resp.text()
        body = msgspec.json.decode(text) if text and "json" in resp.content_type else None
        return Reply(resp.status, body, resp.headers, text)

    async def partner(self, *, active: bool = True) -> str:
        r = await self.call("POST", "/v1/partners", json={"name": "Reseller", "tier": "BUSINESS"})
        assert r.status == 201, r.body
        if active:
            await make_active(self.services.pool, r.body["id"])
        return str(r.body["id"])

    async def add_card(self, localstripe: LocalStripe, partner: str, number: str = CARD_OK) -> str:
        method = localstripe.card(number)
        r = await self.call("POST", "/v1/account/payment-methods", partner, {"payment_method_id": method})
        assert r.status == 201, r.body
        if not r.body["is_default"]:
            assert (await self.call("POST", f"/v1/account/payment-methods/{method}/default", partner)).status == 200
        return method

    async def top_up(self, partner: str, micros: int, key: str | None = None) -> Reply:
        return await self.call("POST", "/v1/wallet/top-ups", partner, {"amount_micros": micros},
                               headers={"Idempotency-Key": key or secrets.token_hex(8)})


@pytest.fixture(scope="module")
async def api(pool: asyncpg.Pool, localstripe: LocalStripe) -> AsyncIterator[Api]:
    changes: list[WalletChanged] = []
    signals = Signals()
    signals.wallet_changed.connect(changes.append)
    context = Context(config=Config(), pool=pool, signals=signals, payments=localstripe.provider())
    app = make_app(service_token_value=TOKEN, platform_token_value=PLATFORM, probes=[],
                   plugins=[TENANTS, EVENTS, APIKEYS, AUDIT, PAYMENTS, WALLET], context=context)
    clock = Clock()
    services = app[wallet_services]
    services.clock = clock
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Api(client, services, app[follower_key], clock, changes)
    finally:
        await client.close()
