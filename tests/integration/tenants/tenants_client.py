"""An RPC client on the tenants plugin, backed by the module's test database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from controlplane.config import Config
from controlplane.http.app import make_app
from controlplane.plugins import Context
from controlplane.tenants.plugin import PLUGIN

TOKEN = "test-token"
PLATFORM_TOKEN = "test-platform-token"


class Rpc:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    async def call(self, method: str, path: str, *, partner: str | None = None, json: Any = None,
                   params: dict[str, str] | None = None, token: str = TOKEN) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        if partner:
            headers["X-Partner-Id"] = partner
        resp = await self.client.request(method, path, json=json, params=params, headers=headers)
        body = await resp.json(content_type=None) if resp.status != 204 else None
        return resp.status, body


@asynccontextmanager
async def rpc_for(pool: asyncpg.Pool) -> AsyncIterator[Rpc]:
    app = make_app(service_token_value=TOKEN, probes=[], plugins=[PLUGIN],
                   context=Context(config=Config(), pool=pool), platform_token_value=PLATFORM_TOKEN)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Rpc(client)
    finally:
        await client.close()
