"""Billing events delivered as signed webhooks: a real receiver on 127.0.0.1 and the webhook worker
(tests/integration/webhooks/webhooks_support.py), each delivery checked with the verifier exactly as
docs/webhooks.md shows it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from multidict import CIMultiDict
from test_webhooks_delivery import documented_verifier
from webhooks_support import Receiver, endpoint, eventually, ok, receiver, running_worker, settings


@dataclass
class Hook:
    pool: asyncpg.Pool
    rx: Receiver
    secret: str
    path: str

    def bodies(self) -> list[dict[str, Any]]:
        """The delivered envelopes whose signature verifies (any other fails the test)."""
        verify = documented_verifier()
        out = []
        for received in self.rx.at(self.path):
            assert verify(self.secret, CIMultiDict(received.headers), received.body, now=time.time())
            out.append(json.loads(received.body))
        return out

    async def delivered(self, count: int) -> list[dict[str, Any]]:
        await eventually(lambda: len(self.rx.at(self.path)) >= count, timeout=10, message=f"{count} deliveries")
        return self.bodies()


@asynccontextmanager
async def hook(dsn: str, partner_id: str, event_type: str) -> AsyncIterator[Hook]:
    """An endpoint of ``partner_id`` subscribed to ``event_type`` only, and a running worker."""
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=12)
    assert pool is not None
    try:
        async with receiver() as rx, running_worker(pool, settings()):
            path = "/" + event_type.replace(".", "-")
            ep = await endpoint(pool, partner_id, rx.on(path, ok), [event_type])
            yield Hook(pool, rx, ep.secrets.signing_secret, path)
    finally:
        await pool.close()
