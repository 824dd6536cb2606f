"""Schemathesis against the live app on 127.0.0.1 (real PostgreSQL): no 5xx, and every
response as the contract says (status documented, content type, body schema, headers).

Bounded: a few examples per operation, the whole run well under 3 minutes. The server
runs in its own thread and loop, since schemathesis calls synchronously.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_headers_conformance, response_schema_conformance, status_code_conformance)

from api_support import PLUGINS, TOKEN
from controlplane.config import Config, WebhooksConfig
from controlplane.http.app import make_app
from controlplane.http.openapi import openapi_document
from controlplane.http.ratelimit import RateLimiter
from controlplane.plugins import Context

EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@dataclass
class LiveServer:
    dsn: str
    url: str = ""
    partner: str = ""
    document: dict[str, Any] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _stop: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=8)
        assert pool is not None
        self.partner = await pool.fetchval(
            "INSERT INTO partners (id, name, tier) VALUES ('ptr_fuzz', 'Fuzz', 'ENTERPRISE') RETURNING id")
        config = Config(webhooks=WebhooksConfig(secret_key="fuzz-key"))
        app = make_app(service_token_value=TOKEN, probes=[], plugins=PLUGINS,
                       context=Context(config=config, pool=pool), limiter=RateLimiter())
        self.document = app[openapi_document]
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()
        await pool.close()

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)


@pytest.fixture(scope="module")
def live(database_dsn: str) -> Iterator[LiveServer]:
    server = LiveServer(database_dsn)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert server._ready.wait(30)
    yield server
    server.stop()
    thread.join(10)


def test_the_live_api_keeps_its_contract(live: LiveServer) -> None:
    schema = schemathesis.openapi.from_dict(live.document)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    failures: list[str] = []
    calls = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

        @given(case=cases)
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def exercise(case: Any) -> None:
            nonlocal calls
            if case.headers and "X-Partner-Id" in case.headers:
                case.headers["X-Partner-Id"] = live.partner
            calls += 1
            try:
                case.call_and_validate(base_url=live.url, headers=headers, checks=CHECKS)
            except Exception as exc:  # collect them all, report once
                failures.append(f"{operation.label}: {str(exc)[:600]}")
                raise

        try:
            exercise()
        except Exception:
            pass
    elapsed = time.monotonic() - started
    print(f"\nschemathesis: {calls} calls over {len(live.document['paths'])} paths in {elapsed:.1f} s,"
          f" {len(failures)} failing operations")
    assert not failures, "\n\n".join(dict.fromkeys(failures))
    assert elapsed < 180
