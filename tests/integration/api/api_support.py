"""A real app (tenants, events, webhooks, API keys, audit) on a test database, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDictProxy

from controlplane.apikeys.plugin import PLUGIN as APIKEYS
from controlplane.audit.plugin import PLUGIN as AUDIT
from controlplane.config import Config, WebhooksConfig
from controlplane.events.plugin import PLUGIN as EVENTS
from controlplane.http.app import make_app
from controlplane.http.ratelimit import RateLimiter
from controlplane.payments.provider import PaymentProvider
from controlplane.plugins import Context, Plugin
from controlplane.signals import Signals
from controlplane.team.plugin import PLUGIN as TEAM
from controlplane.tenants.plugin import PLUGIN as TENANTS
from controlplane.webhooks.plugin import PLUGIN as WEBHOOKS

TOKEN = "portal-token"
PLUGINS = [TENANTS, EVENTS, WEBHOOKS, APIKEYS, AUDIT, TEAM]


@dataclass
class Reply:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]
    text: str


class Api:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.app = client.server.app

    async def call(self, method: str, path: str, *, token: str | None = TOKEN, partner: str | None = None,
                   json: Any = None, params: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if partner is not None:
            sent["X-Partner-Id"] = partner
        resp = await self.client.request(method, path, json=json, params=params, headers=sent)
        text = await resp.text()
        body = await resp.json(content_type=None) if text and "json" in resp.content_type else None
        return Reply(resp.status, body, resp.headers, text)

    async def partner(self) -> str:
        r = await self.call("POST", "/v1/partners", json={"name": "Reseller", "tier": "BUSINESS"})
        assert r.status == 201, r.body
        return str(r.body["id"])

    async def tenant(self, pid: str, name: str = "Tenant") -> str:
        r = await self.call("POST", "/v1/tenants", partner=pid, json={"name": name, "billing_email": "b@x.co"})
        assert r.status == 201, r.body
        return str(r.body["id"])

    async def user(self, pid: str, role: str = "PARTNER_ADMIN", name: str = "Alice") -> str:
        """An ACTIVE partner user (created by the portal acting as itself), for X-Acting-User."""
        r = await self.call("POST", "/v1/team/users", partner=pid,
                            json={"email": f"{name.lower()}.{role.lower()}@example.com", "name": name,
                                  "role": role, "activate": True})
        assert r.status == 201, r.body
        return str(r.body["id"])

    async def key(self, pid: str, scopes: list[str], **fields: Any) -> tuple[str, dict[str, Any]]:
        r = await self.call("POST", "/v1/api-keys", partner=pid,
                            json={"name": "Integration", "scopes": scopes, **fields})
        assert r.status == 201, r.body
        return str(r.body["secrets"]["key"]), {k: v for k, v in r.body.items() if k != "secrets"}


@asynccontextmanager
async def api_for(pool: asyncpg.Pool, limiter: RateLimiter | None = None,
                  plugins: list[Plugin] | None = None, *, signals: Signals | None = None,
                  payments: PaymentProvider | None = None) -> AsyncIterator[Api]:
    config = Config(webhooks=WebhooksConfig(secret_key="test-webhooks-key", allow_loopback=True))
    context = Context(config=config, pool=pool, signals=Signals() if signals is None else signals,
                      payments=payments)
    app = make_app(service_token_value=TOKEN, probes=[], plugins=PLUGINS if plugins is None else plugins,
                   context=context, limiter=limiter)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Api(client)
    finally:
        await client.close()

