"""The daemon's real plugins, installed in several orders, give the same outcome.

Each capability wires only itself and reacts to the others through the frozen signals
(controlplane/signals.py), so the order of the plugin list must not matter: the same
scenario (a tenant, an extension, a DID over the tenant's cap, a manual suspension)
runs on the app built with the list as shipped, reversed, and two other orders.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from controlplane.config import AsteriskConfig, AsteriskRunMode, Config, WebhooksConfig
from controlplane.http.app import make_app
from controlplane.limits.engine import Engine
from controlplane.limits.http import limit_services
from controlplane.plugin_list import PLUGINS
from controlplane.plugins import Context, Plugin
from controlplane.signals import SignalFrozen

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))
from inventory_support import buy_did  # noqa: E402

TOKEN, PLATFORM = "portal-token", "platform-token"
ORDERS = {
    "shipped": list(PLUGINS),
    "reversed": list(reversed(PLUGINS)),
    "limits-first": sorted(PLUGINS, key=lambda p: p.name != "limits"),
    "interleaved": PLUGINS[1::2] + PLUGINS[0::2],
}


@dataclass
class Outcome:
    refused: tuple[int, str | None, str | None]
    cap_events: list[str]
    auto_status: tuple[str, str]  # (database, admission engine)
    suspension_cause: str
    manual: tuple[str, str, str, str]  # admission before, engine status right after the RPC, admission after,
    # admission after reactivation


class Portal:
    def __init__(self, client: TestClient, partner: str = "") -> None:
        self.client, self.partner = client, partner

    async def call(self, method: str, path: str, json: Any = None, *, token: str = TOKEN) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        if self.partner:
            headers["X-Partner-Id"] = self.partner
        resp = await self.client.request(method, path, json=json, headers=headers)
        text = await resp.text()
        return resp.status, (msgspec.json.decode(text) if text else None)

    async def created(self, path: str, json: Any) -> str:
        status, body = await self.call("POST", path, json)
        assert status == 201, (path, status, body)
        return str(body["id"])


async def _scenario(pool: asyncpg.Pool, plugins: list[Plugin], n: int, where: Path) -> Outcome:
    # An external Asterisk's directory of our own: nothing is written near a shared instance.
    config = Config(webhooks=WebhooksConfig(secret_key="test-webhooks-key", allow_loopback=True),
                    asterisk=AsteriskConfig(run=AsteriskRunMode.EXTERNAL, config_dir=str(where)),
                    data_dir=str(where))
    context = Context(config=config, pool=pool)
    app = make_app(service_token_value=TOKEN, probes=[], plugins=plugins, context=context,
                   platform_token_value=PLATFORM)
    assert all(s.frozen for s in context.signals.all().values())
    with pytest.raises(SignalFrozen):  # nothing subscribes once the plugins are in
        context.signals.tenant_status_changed.connect(lambda change: None)  # type: ignore[arg-type,return-value]
    engine: Engine = app[limit_services].engine
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        portal = Portal(client)
        portal.partner = await portal.created("/v1/partners", {"name": f"Order {n}", "tier": "BUSINESS"})
        # Auto-suspension at a count cap: the second DID is refused, announced, and suspends.
        capped = await portal.created("/v1/tenants", {"name": f"Capped {n}", "billing_email": "b@x.co"})
        status, _ = await portal.call("PUT", f"/v1/tenants/{capped}/limits", {"max_dids": 1, "auto_suspend": True})
        assert status == 200
        extension = await portal.created(f"/v1/tenants/{capped}/extensions", {"number": "101", "display_name": "A"})
        first, second = [await buy_did(pool, portal.partner, f"+1212555{n:02d}{i:02d}") for i in (1, 2)]
        status, body = await portal.call("POST", f"/v1/numbers/{first}/assign",
                                         {"tenant_id": capped, "extension_id": extension})
        assert status == 200, body
        status, body = await portal.call("POST", f"/v1/numbers/{second}/assign", {"tenant_id": capped})
        refused = (status, body.get("code") or body["type"].rpartition("#")[2], body.get("limit"))
        rows = await pool.fetch("SELECT type, body FROM events WHERE tenant_id = $1 AND type IN"
                                " ('usage.cap_reached', 'tenant.suspended') ORDER BY seq", capped)
        suspended = [msgspec.json.decode(r["body"])["data"] for r in rows if r["type"] == "tenant.suspended"]
        auto = (await pool.fetchval("SELECT status FROM tenants WHERE id = $1", capped),
                engine.tenants[capped].status)
        # A manual suspension over RPC reaches admission when the RPC returns: no poll.
        manual = await portal.created("/v1/tenants", {"name": f"Manual {n}", "billing_email": "b@x.co"})
        before = await engine.admit(manual, "+12125550100", f"order{n}-a")
        status, _ = await portal.call("PATCH", f"/v1/tenants/{manual}", {"status": "SUSPENDED"})
        assert status == 200
        seen = engine.tenants[manual].status
        after = await engine.admit(manual, "+12125550100", f"order{n}-b")
        status, _ = await portal.call("PATCH", f"/v1/tenants/{manual}", {"status": "ACTIVE"})
        assert status == 200
        again = await engine.admit(manual, "+12125550100", f"order{n}-c")
        return Outcome(refused=refused, cap_events=[r["type"] for r in rows],
                       auto_status=auto, suspension_cause=suspended[0]["cause"] if suspended else "",
                       manual=(before.reason.value, seen, after.reason.value, again.reason.value))
    finally:
        await client.close()


@pytest.mark.parametrize("order", list(ORDERS))
async def test_the_same_outcome_in_every_plugin_order(pool: asyncpg.Pool, order: str, tmp_path: Path) -> None:
    plugins = ORDERS[order]
    assert sorted(p.name for p in plugins) == sorted(p.name for p in PLUGINS)
    outcome = await _scenario(pool, plugins, list(ORDERS).index(order) + 1, tmp_path)
    assert outcome == Outcome(
        refused=(409, "usage_limit", "max_dids"),
        cap_events=["usage.cap_reached", "tenant.suspended"],
        auto_status=("SUSPENDED", "SUSPENDED"),
        suspension_cause="usage_cap:max_dids",
        manual=("ok", "SUSPENDED", "suspended", "ok")), order


def test_the_orders_differ() -> None:
    names = {tuple(p.name for p in plugins) for plugins in ORDERS.values()}
    assert len(names) == len(ORDERS)
    assert ORDERS["reversed"][0].name == PLUGINS[-1].name
