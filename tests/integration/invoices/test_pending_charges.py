"""One-time charges (setup, porting, custom) added through the RPC wait for the tenant's next
cycle invoice and appear there as their own lines, once; bad input is a 422 naming every field,
with nothing written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from invoice_support import NOV, OCT, MonthlyLookup, partner, tenant

from controlplane.apikeys.plugin import PLUGIN as APIKEYS
from controlplane.audit.plugin import PLUGIN as AUDIT
from controlplane.config import Config
from controlplane.events.plugin import PLUGIN as EVENTS
from controlplane.http.app import make_app
from controlplane.invoices.jobs import run_invoices
from controlplane.invoices.plugin import PLUGIN as INVOICES
from controlplane.plugins import Context
from controlplane.signals import Signals
from controlplane.tenants.plugin import PLUGIN as TENANTS

TOKEN = "svc-pending-charges-" + "x" * 24
Client = TestClient[web.Request, web.Application]


@pytest.fixture(scope="module")
async def client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    context = Context(config=Config(), pool=pool, signals=Signals())
    app = make_app(service_token_value=TOKEN, probes=[], plugins=[TENANTS, EVENTS, APIKEYS, AUDIT, INVOICES],
                   context=context)
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    try:
        yield test_client
    finally:
        await test_client.close()


async def call(client: Client, method: str, path: str, partner_id: str, json: Any = None) -> tuple[int, Any]:
    resp = await client.request(method, path, json=json,
                                headers={"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": partner_id})
    text = await resp.text()
    return resp.status, msgspec.json.decode(text) if text else None


async def test_charges_added_through_the_rpc_are_lines_of_the_next_cycle_invoice(client: Client,
                                                                                 pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        pid, other = await partner(conn), await partner(conn)
        tid = await tenant(conn, pid, created=OCT - timedelta(days=40), extensions=5)
    path = f"/v1/tenants/{tid}/invoice-items"
    status, bad = await call(client, "POST", path, pid, {"kind": "refund", "description": "", "amount_micros": 1,
                                                         "reference": "bad ref", "extra": 1})
    assert status == 422
    assert sorted(e["field"] for e in bad["errors"]) == ["amount_micros", "description", "extra", "kind",
                                                          "reference"]
    assert await pool.fetchval("SELECT count(*) FROM tenant_invoice_items WHERE tenant_id = $1", tid) == 0

    porting = {"kind": "porting", "description": "Port of +15015550123", "amount_micros": 15_000_000,
               "reference": "port-1"}
    status, made = await call(client, "POST", path, pid, porting)
    assert status == 201 and made["reference"] == "charge:port-1" and made["currency"] == "USD"
    status, again = await call(client, "POST", path, pid, porting)  # a retry: the same charge, not another
    assert status == 200 and again["id"] == made["id"]
    status, clash = await call(client, "POST", path, pid, {**porting, "amount_micros": 16_000_000})
    assert status == 409 and clash["code"] == "conflict"
    status, _ = await call(client, "POST", path, pid, {"kind": "setup", "description": "Desk phones setup",
                                                       "amount_micros": 20_000_000})
    assert status == 201
    assert (await call(client, "POST", path, other, porting))[0] == 404  # not its tenant
    status, page = await call(client, "GET", path, pid)
    assert status == 200 and [(i["kind"], i["amount_micros"]) for i in page["items"]] == [
        ("porting", 15_000_000), ("setup", 20_000_000)]

    await run_invoices(pool, NOV + timedelta(minutes=5), lookup=MonthlyLookup())
    await run_invoices(pool, NOV + timedelta(minutes=6), lookup=MonthlyLookup())  # nothing twice
    rows = await pool.fetch("SELECT lines, subtotal_micros FROM tenant_invoices WHERE tenant_id = $1", tid)
    assert len(rows) == 1
    lines = msgspec.json.decode(rows[0]["lines"]) if isinstance(rows[0]["lines"], str) else rows[0]["lines"]
    assert [(ln["kind"], ln["description"], ln["amount_micros"]) for ln in lines] == [
        ("base_fee", "Flat 99 base fee", 99_000_000), ("porting", "Port of +15015550123", 15_000_000),
        ("setup", "Desk phones setup", 20_000_000)]
    assert rows[0]["subtotal_micros"] == 134_000_000
    assert (await call(client, "GET", path, pid))[1]["items"] == []  # consumed by that invoice
