"""One DID assignment path (issue 13): every route that gives a tenant a DID meets the same
cap check, the same refusal and the same reaction, against a real PostgreSQL and the real
app (tenants, numbers, limits plugins wired as the daemon wires them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_support import PLUGINS, TOKEN, Api
from inventory_support import buy_did

from controlplane.calls.plugin import PLUGIN as CALLS
from controlplane.config import AsteriskConfig, AsteriskRunMode, Config, WebhooksConfig
from controlplane.http.app import make_app
from controlplane.http.openapi import openapi_document
from controlplane.limits.plugin import PLUGIN as LIMITS
from controlplane.numbers.plugin import PLUGIN as NUMBERS
from controlplane.plugins import Context

PLATFORM = "platform-token-assign"
CAP = 2


@dataclass
class World:
    api: Api
    pool: asyncpg.Pool
    partner: str
    numbers: int = 0

    def number(self) -> str:
        self.numbers += 1
        return f"+1501777{self.numbers:04d}"

    async def did(self, tenant_id: str | None = None) -> str:
        return await buy_did(self.pool, self.partner, self.number(), tenant_id=tenant_id)

    async def tenant(self, name: str, *, cap: int = CAP, auto_suspend: bool = True) -> str:
        tenant = await self.api.tenant(self.partner, name.replace("{id}", "id"))
        put = await self.api.call("PUT", f"/v1/tenants/{tenant}/limits", partner=self.partner,
                                  json={"max_dids": cap, "auto_suspend": auto_suspend})
        assert put.status == 200, put.body
        return tenant


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    # limits.enabled (the default): the limits plugin wires its reactions; no background
    # job runs here, so its admission server is never started. The dialplan the applier
    # re-renders goes to a scratch rootfs, never the shared one.
    scratch = tmp_path_factory.mktemp("assign")
    config = Config(webhooks=WebhooksConfig(secret_key="assign-test-key"), data_dir=str(scratch / "var"),
                    asterisk=AsteriskConfig(run=AsteriskRunMode.LOCAL, rootfs=str(scratch / "rootfs")))
    app = make_app(service_token_value=TOKEN, platform_token_value=PLATFORM, probes=[],
                   plugins=[*PLUGINS, NUMBERS, CALLS, LIMITS], context=Context(config=config, pool=pool))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        api = Api(client)
        yield World(api, pool, await api.partner())
    finally:
        await client.close()


# Each assigns one number (made ready by ``prepare`` before the tenant is full) to the tenant.
Prepare = Callable[[World, str], Awaitable[str]]
Assign = Callable[[World, str, str], Awaitable[Any]]


async def _bought(world: World, tenant: str) -> str:
    return await world.did()


async def _port_at_foc(world: World, tenant: str) -> str:
    """A port request for one number, through to FOC (the carrier's steps take the platform token)."""
    api, pid = world.api, world.partner
    created = await api.call("POST", "/v1/ports", partner=pid, json={
        "numbers": [world.number()], "losing_carrier": "Old Telco", "account_holder": "Acme",
        "account_number": "12345", "tenant_id": tenant,
        "service_address": {"street": "1 Main St", "city": "Little Rock", "state": "AR", "zip": "72201"}})
    assert created.status == 201, created.body
    port = str(created.body["id"])
    for kind, name, kind_type, data in (("LOA", "loa.pdf", "application/pdf", b"%PDF-1.7 x"),
                                        ("BILL", "bill.png", "image/png", b"\x89PNG\r\n\x1a\nx")):
        resp = await api.client.post(f"/v1/ports/{port}/documents", params={"kind": kind, "filename": name},
                                     data=data, headers={"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": pid,
                                                         "Content-Type": kind_type})
        assert resp.status == 201, await resp.text()
    for step, body in (("submit", None), ("foc", {"foc_date": "2026-06-03"})):
        moved = await api.call("POST", f"/v1/ports/{port}/{step}", token=PLATFORM, partner=pid, json=body)
        assert moved.status == 200, moved.body
    return port


def _rid(tenant: str) -> dict[str, str]:
    return {"X-Request-Id": f"req-{tenant}"}


async def _dids_patch(world: World, did: str, tenant: str) -> Any:
    return await world.api.call("PATCH", f"/v1/dids/{did}", partner=world.partner, json={"tenant_id": tenant},
                                headers=_rid(tenant))


async def _numbers_assign(world: World, did: str, tenant: str) -> Any:
    return await world.api.call("POST", f"/v1/numbers/{did}/assign", partner=world.partner,
                                json={"tenant_id": tenant}, headers=_rid(tenant))


async def _numbers_bulk(world: World, did: str, tenant: str) -> Any:
    return await world.api.call("POST", "/v1/numbers/bulk", partner=world.partner,
                                json={"action": "assign", "ids": [did], "tenant_id": tenant}, headers=_rid(tenant))


async def _port_complete(world: World, port: str, tenant: str) -> Any:
    return await world.api.call("POST", f"/v1/ports/{port}/complete", token=PLATFORM, partner=world.partner,
                                headers=_rid(tenant))


ROUTES: dict[str, tuple[Prepare, Assign]] = {
    "PATCH /v1/dids/{id} (deprecated alias)": (_bought, _dids_patch),
    "POST /v1/numbers/{id}/assign": (_bought, _numbers_assign),
    "POST /v1/numbers/bulk": (_bought, _numbers_bulk),
    "POST /v1/ports/{id}/complete": (_port_at_foc, _port_complete),
}


def _without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}


async def _events(pool: asyncpg.Pool, tenant: str, *types: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await pool.fetch("SELECT type, body FROM events WHERE tenant_id = $1 AND type = ANY($2::text[])"
                            " ORDER BY seq", tenant, list(types))
    return [(r["type"], msgspec.json.decode(r["body"])["data"]) for r in rows]


@pytest.mark.parametrize("route", list(ROUTES))
async def test_the_did_over_the_cap_gets_the_same_problem_and_event_through_every_route(
        world: World, route: str) -> None:
    prepare, assign = ROUTES[route]
    tenant = await world.tenant(f"Full via {route}")
    ready = await prepare(world, tenant)  # before the tenant is full: a port request checks room
    for _ in range(CAP):
        await world.did(tenant)
    refused = await assign(world, ready, tenant)
    assert refused.status == 409, refused.body
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert _without_request_id(refused.body) == {
        "type": "about:blank#usage_limit", "code": "usage_limit", "title": "Conflict", "status": 409,
        "detail": f"the tenant's usage limit max_dids allows at most {CAP} DIDs; it has {CAP}",
        "field": "max_dids", "limit": "max_dids", "cap": CAP, "current": CAP}
    # Nothing changed hands; the limits capability reacted exactly as for any other route.
    assert await world.pool.fetchval("SELECT count(*) FROM dids WHERE tenant_id = $1", tenant) == CAP
    events = await _events(world.pool, tenant, "usage.cap_reached", "tenant.suspended")
    assert [kind for kind, _ in events] == ["usage.cap_reached", "tenant.suspended"]
    cap_reached = events[0][1]
    assert {k: cap_reached[k] for k in ("tenant_id", "cap", "used", "limit", "unit", "auto_suspend")} == {
        "tenant_id": tenant, "cap": "max_dids", "used": CAP, "limit": CAP, "unit": "count", "auto_suspend": True}
    assert events[1][1]["cause"] == "usage_cap:max_dids"
    assert await world.pool.fetchval("SELECT status FROM tenants WHERE id = $1", tenant) == "SUSPENDED"


@pytest.mark.parametrize("route", list(ROUTES))
async def test_every_route_writes_one_event_and_one_audit_entry_with_the_assignment(
        world: World, route: str) -> None:
    prepare, assign = ROUTES[route]
    tenant = await world.tenant(f"Room via {route}", cap=CAP)
    ready = await prepare(world, tenant)
    done = await assign(world, ready, tenant)
    assert done.status == 200, done.body
    (did,) = [r["id"] for r in await world.pool.fetch("SELECT id FROM dids WHERE tenant_id = $1", tenant)]
    assigned = await _events(world.pool, tenant, "phone_number.assigned")
    assert [data["phone_number"]["id"] for _, data in assigned] == [did]
    assert assigned[0][1]["phone_number"]["tenant_id"] == tenant
    audit = await world.pool.fetch("SELECT resource, resource_id, action, tenant_id, changes FROM audit_events"
                                   " WHERE request_id = $1 AND resource = 'did'", f"req-{tenant}")
    assert [(a["resource_id"], a["action"], a["tenant_id"]) for a in audit] == [(did, "assign", tenant)]
    assert msgspec.json.decode(audit[0]["changes"])["tenant_id"] == {"before": None, "after": tenant}
    # Written by the service in the change's transaction: no generic after-commit entry for the
    # DID's route (a completed port also records the port's own transition).
    others = await world.pool.fetch("SELECT resource, action FROM audit_events WHERE request_id = $1"
                                    " AND resource <> 'did'", f"req-{tenant}")
    assert [(o["resource"], o["action"]) for o in others] == (
        [("port_request", "complete")] if "ports" in route else [])
    # 1 of 2 is 50%: below the default threshold, so no alert yet.
    assert await _events(world.pool, tenant, "usage.threshold_reached", "usage.cap_reached") == []


async def test_the_threshold_alert_is_the_same_whichever_route_reaches_it(world: World) -> None:
    """max_dids 2 at the default 80% threshold: the second DID announces it, once, via either path."""
    for name, assign in (("alias", _dids_patch), ("numbers", _numbers_assign)):
        tenant = await world.tenant(f"Threshold {name}", auto_suspend=False)
        await world.did(tenant)
        second = await world.did()
        assert (await assign(world, second, tenant)).status == 200
        ((kind, data),) = await _events(world.pool, tenant, "usage.threshold_reached", "usage.cap_reached")
        assert (kind, data["cap"], data["used"], data["limit"]) == ("usage.threshold_reached", "max_dids", 2, 2)


async def test_concurrent_assignments_through_both_routes_never_pass_the_cap(world: World) -> None:
    """The last slot, asked for at once through the alias and through /v1/numbers: one wins."""
    for attempt in range(5):
        tenant = await world.tenant(f"Race {attempt}", cap=1, auto_suspend=False)
        a, b = await world.did(), await world.did()
        results = await asyncio.gather(_dids_patch(world, a, tenant), _numbers_assign(world, b, tenant))
        assert sorted(r.status for r in results) == [200, 409], [r.body for r in results]
        assert [r.body["type"] for r in results if r.status == 409] == ["about:blank#usage_limit"]
        assert await world.pool.fetchval("SELECT count(*) FROM dids WHERE tenant_id = $1", tenant) == 1


async def test_the_dids_reads_and_patch_are_a_deprecated_alias_of_the_numbers_routes(world: World) -> None:
    tenant = await world.tenant("Alias")
    did = await world.did()
    patched = await _dids_patch(world, did, tenant)
    old, new = await world.api.call("GET", f"/v1/dids/{did}", partner=world.partner), \
        await world.api.call("GET", f"/v1/numbers/{did}", partner=world.partner)
    for reply in (patched, old):
        assert reply.status == 200 and reply.headers["Deprecation"] == "@1796083200"
        assert reply.headers["Link"] == f'</v1/numbers/{did}>; rel="successor-version"'
    listed = await world.api.call("GET", "/v1/dids", partner=world.partner, params={"tenant_id": tenant})
    assert listed.headers["Link"] == '</v1/numbers>; rel="successor-version"'
    assert [d["id"] for d in listed.body["items"]] == [did]
    assert "Deprecation" not in new.headers
    assert {k: old.body[k] for k in ("id", "number", "tenant_id", "extension_id", "status", "cnam")} == \
        {k: new.body[k] for k in ("id", "number", "tenant_id", "extension_id", "status", "cnam")}
    # Unassigning through the alias is /release: RELEASED, billing stops, one event.
    released = await world.api.call("PATCH", f"/v1/dids/{did}", partner=world.partner, json={"tenant_id": None})
    assert (released.body["tenant_id"], released.body["status"]) == (None, "RELEASED")
    assert await world.pool.fetchval("SELECT billing_since FROM dids WHERE id = $1", did) is None
    assert [k for k, _ in await _events(world.pool, tenant, "phone_number.released")] == ["phone_number.released"]
    doc = world.api.app[openapi_document]["paths"]
    assert doc["/v1/dids"]["get"]["deprecated"] and doc["/v1/dids/{did_id}"]["get"]["deprecated"]
    assert doc["/v1/dids/{did_id}"]["patch"]["deprecated"]
    assert not doc["/v1/dids"]["post"].get("deprecated")  # the operator's grant has no other route
