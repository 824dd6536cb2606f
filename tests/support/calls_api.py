"""The calls and billing-profiles RPC served over real HTTP for integration tests (one app with
tenants, events, calls and profiles against the test PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import msgspec
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from controlplane.calls.plugin import PLUGIN as CALLS
from controlplane.calls.plugin import recorder_key
from controlplane.calls.recorder import CallRecorder
from controlplane.config import Config
from controlplane.events.plugin import PLUGIN as EVENTS
from controlplane.http.app import make_app
from controlplane.plugins import Context
from controlplane.profiles.plugin import PLUGIN as PROFILES
from controlplane.tenants.plugin import PLUGIN as TENANTS

A = TypeVar("A", bound="CallsApi")


@dataclass
class CallsApi:
    client: TestClient[web.Request, web.Application]
    recorder: CallRecorder
    token: str

    async def call(self, method: str, path: str, *, partner: str | None = None, json: Any = None,
                   params: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if partner is not None:
            headers["X-Partner-Id"] = partner
        resp = await self.client.request(method, path, json=json, params=params, data=data, headers=headers)
        text = await resp.text()
        return resp.status, (msgspec.json.decode(text) if text and "json" in resp.content_type else text)

    async def partner(self) -> str:
        status, body = await self.call("POST", "/v1/partners", json={"name": "Reseller", "tier": "BUSINESS"})
        assert status == 201, body
        return str(body["id"])


@asynccontextmanager
async def serve(pool: asyncpg.Pool, token: str, api: type[A]) -> AsyncIterator[A]:
    app = make_app(service_token_value=token, probes=[], plugins=[TENANTS, EVENTS, CALLS, PROFILES],
                   context=Context(config=Config(), pool=pool))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield api(client, app[recorder_key], token)
    finally:
        await client.close()
