"""The platform operator's credential against a real PostgreSQL, over real HTTP.

Numbers enter a partner's inventory only by purchase, a completed port or the
platform's action: neither a partner API key nor the portal's service token acting
for a partner can create a DID, load inventory, credit a wallet or make the carrier's
side of a port (submit, FOC, complete, reject); the platform token can, and can do
nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_support import PLUGINS, TOKEN, Api

from controlplane.calls.plugin import PLUGIN as CALLS
from controlplane.config import Config, WebhooksConfig
from controlplane.http.app import make_app
from controlplane.numbers.plugin import PLUGIN as NUMBERS
from controlplane.plugins import Context
from controlplane.wallet.plugin import PLUGIN as WALLET
from wallet_support import make_active

PLATFORM = "platform-token"
ADDRESS = {"street": "1234 Main St", "city": "Little Rock", "state": "AR", "zip": "72211"}
PDF, PNG = b"%PDF-1.7 signed", b"\x89PNG\r\n\x1a\n bill"
ONLY_PLATFORM = {"key": 403, "portal": 403, "platform": 200}


@dataclass
class World:
    api: Api
    pool: asyncpg.Pool
    partner: str
    tenant: str
    key: str  # the partner's API key, with every scope these routes need

    async def as_each(self, method: str, path: str, **kwargs: object) -> dict[str, int]:
        """The status the same request gets with the key, the portal (for the partner) and the platform."""
        key = await self.api.call(method, path, token=self.key, **kwargs)  # type: ignore[arg-type]
        portal = await self.api.call(method, path, partner=self.partner, **kwargs)  # type: ignore[arg-type]
        platform = await self.api.call(method, path, token=PLATFORM, partner=self.partner,
                                       **kwargs)  # type: ignore[arg-type]
        for refused in (key, portal):
            if refused.status == 403:
                assert refused.body["type"].endswith("#platform_only"), refused.body
        return {"key": key.status, "portal": portal.status, "platform": platform.status}


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool) -> AsyncIterator[World]:
    config = Config(webhooks=WebhooksConfig(secret_key="platform-test-key"))
    app = make_app(service_token_value=TOKEN, platform_token_value=PLATFORM, probes=[],
                   plugins=[*PLUGINS, NUMBERS, CALLS, WALLET], context=Context(config=config, pool=pool))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        api = Api(client)
        partner = await api.partner()
        await make_active(pool, partner)  # its wallet pays (a TRIAL partner's draws nothing)
        tenant = await api.tenant(partner, "Platform Tenant")
        key, _ = await api.key(partner, ["phone_numbers:write", "tenants:write", "billing:read"])
        yield World(api, pool, partner, tenant, key)
    finally:
        await client.close()


async def test_neither_a_key_nor_the_portal_can_create_a_did_and_the_platform_can(world: World) -> None:
    api, pid = world.api, world.partner
    body = {"number": "+15013330100"}
    for token, partner in ((world.key, None), (TOKEN, pid)):
        refused = await api.call("POST", "/v1/dids", token=token, partner=partner, json=body)
        assert refused.status == 403 and refused.body["type"].endswith("#platform_only"), refused.body
    assert await world.pool.fetchval("SELECT count(*) FROM dids WHERE number = $1", body["number"]) == 0
    granted = await api.call("POST", "/v1/dids", token=PLATFORM, partner=pid, json=body)
    assert granted.status == 201 and granted.body["partner_id"] == pid and granted.body["tenant_id"] is None
    actor = await world.pool.fetchval("SELECT actor_type FROM audit_events WHERE resource = 'did'"
                                      " AND resource_id = $1", granted.body["id"])
    assert actor == "platform"
    # The partner sees the grant as its own and assigns it like any DID.
    assigned = await api.call("PATCH", f"/v1/dids/{granted.body['id']}", token=world.key,
                              json={"tenant_id": world.tenant})
    assert assigned.status == 200 and assigned.body["tenant_id"] == world.tenant
    # The platform names the partner it acts on.
    anonymous = await api.call("POST", "/v1/dids", token=PLATFORM, json={"number": "+15013330199"})
    assert anonymous.status == 422 and anonymous.body["field"] == "X-Partner-Id"


async def test_a_granted_number_leaves_the_inventory_for_sale(world: World) -> None:
    api, pid = world.api, world.partner
    resp = await api.client.post("/v1/number-inventory",
                                 data=b"number,state,city,rate_center\n+15013340100,AR,,\n",
                                 headers={"Authorization": f"Bearer {PLATFORM}", "Content-Type": "text/csv"})
    assert resp.status == 201 and (await resp.json())["added"] == 1
    assert (await api.call("POST", "/v1/dids", token=PLATFORM, partner=pid,
                           json={"number": "+15013340100"})).status == 201
    sold_to = await world.pool.fetchval("SELECT sold_to FROM number_inventory WHERE number = '+15013340100'")
    assert sold_to == pid
    found = await api.call("GET", "/v1/numbers/available/local", token=world.key,
                           params={"state": "AR", "area_code": "501", "nxx": "334"})
    assert found.status == 200 and found.body["items"] == []


async def test_inventory_and_wallet_credits_are_the_platforms_and_fund_a_purchase(world: World) -> None:
    api, pid, pool = world.api, world.partner, world.pool
    csv = b"npa,nxx,first,last,state,city,rate_center\n501,335,0,9,AR,Little Rock,LTLROCK\n"
    statuses = {}
    for name, token in (("key", world.key), ("portal", TOKEN), ("platform", PLATFORM)):
        resp = await api.client.post("/v1/number-inventory", data=csv, headers={
            "Authorization": f"Bearer {token}", "X-Partner-Id": pid, "Content-Type": "text/csv"})
        statuses[name] = resp.status
    assert statuses == {"key": 403, "portal": 403, "platform": 201}
    # Nothing in the wallet: the purchase is refused.
    buy = {"numbers": ["+15013350001"]}
    short = await api.call("POST", "/v1/numbers/purchase", token=world.key, json=buy)
    assert short.status == 409 and short.body["type"].endswith("#insufficient_funds")
    credit = {"amount_micros": 5_000_000, "reference": "wire-2026-0001", "note": "prepayment"}
    assert await world.as_each("POST", "/v1/wallet/credits", json=credit) == {
        "key": 403, "portal": 403, "platform": 201}
    again = await api.call("POST", "/v1/wallet/credits", token=PLATFORM, partner=pid, json=credit)
    assert again.status == 200 and again.body["balance_micros"] == 5_000_000  # credited once
    other = await api.call("POST", "/v1/wallet/credits", token=PLATFORM, partner=pid,
                           json={**credit, "amount_micros": 6_000_000})
    assert other.status == 409 and other.body["field"] == "reference"
    bad = await api.call("POST", "/v1/wallet/credits", token=PLATFORM, partner=pid,
                         json={"amount_micros": 0, "reference": "no spaces allowed", "note": "x" * 201})
    assert bad.status == 422 and bad.body["field"] == "amount_micros"
    assert [e["field"] for e in bad.body["errors"]] == ["amount_micros", "reference", "note"]
    assert (await api.call("POST", "/v1/wallet/credits", token=PLATFORM, partner="ptr_nobody",
                           json={**credit, "reference": "wire-x"})).status == 404
    bought = await api.call("POST", "/v1/numbers/purchase", token=world.key, json=buy)
    assert bought.status == 201 and bought.body["setup_total_micros"] == 1_000_000
    assert (await api.call("GET", "/v1/wallet", token=world.key)).body["balance_micros"] == 4_000_000
    ledger = [(r["kind"], r["amount"], r["reference"]) for r in await pool.fetch(
        "SELECT kind, amount, reference FROM wallet_entries WHERE partner_id = $1 ORDER BY id", pid)]
    did_id = bought.body["numbers"][0]["id"]
    assert ledger == [("manual_adjustment", 5_000_000, "adjust:wire-2026-0001"),
                      ("setup_fee", -1_000_000, f"setup:{did_id}")]
    assert await pool.fetchval("SELECT actor_type FROM audit_events WHERE resource = 'wallet'"
                               " AND resource_id = 'adjust:wire-2026-0001'") == "platform"


async def _port(world: World, number: str) -> str:
    created = await world.api.call("POST", "/v1/ports", token=world.key, json={
        "numbers": [number], "losing_carrier": "Old Telco", "account_holder": "Acme", "account_number": "42",
        "service_address": ADDRESS, "tenant_id": world.tenant})
    assert created.status == 201, created.body
    port = str(created.body["id"])
    for kind, filename, content_type, content in (("LOA", "loa.pdf", "application/pdf", PDF),
                                                  ("BILL", "bill.png", "image/png", PNG)):
        resp = await world.api.client.post(f"/v1/ports/{port}/documents", data=content,
                                           params={"kind": kind, "filename": filename},
                                           headers={"Authorization": f"Bearer {world.key}",
                                                    "Content-Type": content_type})
        assert resp.status == 201, await resp.text()
    return port


async def test_only_the_platform_makes_the_carriers_side_of_a_port(world: World) -> None:
    port = await _port(world, "+15013360100")
    # Each carrier-side step: the key and the portal get 403 and change nothing; the platform moves it on.
    assert await world.as_each("POST", f"/v1/ports/{port}/submit") == ONLY_PLATFORM
    foc = {"foc_date": "2026-06-03"}
    assert await world.as_each("POST", f"/v1/ports/{port}/foc", json=foc) == ONLY_PLATFORM
    assert await world.pool.fetchval("SELECT count(*) FROM dids WHERE number = '+15013360100'") == 0
    assert await world.as_each("POST", f"/v1/ports/{port}/complete") == ONLY_PLATFORM
    done = await world.api.call("GET", f"/v1/ports/{port}", token=world.key)
    assert done.body["status"] == "COMPLETED"
    did = await world.pool.fetchrow("SELECT partner_id, tenant_id, status FROM dids"
                                    " WHERE number = '+15013360100'")
    assert tuple(did) == (world.partner, world.tenant, "ACTIVE")


async def test_a_partner_resubmits_and_cancels_but_cannot_reject(world: World) -> None:
    port = await _port(world, "+15013370100")
    assert (await world.api.call("POST", f"/v1/ports/{port}/submit", token=PLATFORM,
                                 partner=world.partner)).status == 200
    reason = {"reason": "name mismatch"}
    assert await world.as_each("POST", f"/v1/ports/{port}/reject", json=reason) == ONLY_PLATFORM
    resubmitted = await world.api.call("POST", f"/v1/ports/{port}/resubmit", token=world.key)
    assert resubmitted.status == 200 and resubmitted.body["status"] == "SUBMITTED"
    cancelled = await world.api.call("POST", f"/v1/ports/{port}/cancel", partner=world.partner)
    assert cancelled.status == 200 and cancelled.body["status"] == "CANCELLED"


async def test_the_platform_token_reaches_nothing_but_platform_operations(world: World) -> None:
    api, pid = world.api, world.partner
    for method, path, body in (("GET", "/v1/dids", None), ("GET", "/v1/tenants", None),
                               ("POST", "/v1/numbers/purchase", {"numbers": ["+15013350002"]}),
                               ("POST", "/v1/api-keys", {"name": "x", "scopes": ["tenants:read"]}),
                               ("GET", "/v1/partners", None), ("GET", "/v1/wallet", None)):
        r = await api.call(method, path, token=PLATFORM, partner=pid, json=body)
        assert r.status == 403 and r.body["type"].endswith("#partner_operation"), (method, path, r.body)
    assert (await api.call("GET", "/v1/tenants", token=PLATFORM + "x", partner=pid)).status == 401
    assert (await api.call("GET", "/v1/tenants", token=TOKEN, partner=pid)).status == 200


def test_the_platform_token_is_never_the_service_token() -> None:
    with pytest.raises(ValueError, match="differ"):
        make_app(service_token_value="same", platform_token_value="same", probes=[])
