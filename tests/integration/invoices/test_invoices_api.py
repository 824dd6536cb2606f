"""The invoice and tax routes over real HTTP on PostgreSQL: filters and stats, off-cycle
invoices, issue/void, numbering prefix, jurisdictions and the tenant's assignment (new invoices
only), 422s naming every field, 404s across partners."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
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
from controlplane.invoices import status, store
from controlplane.invoices.jobs import run_invoices
from controlplane.invoices.plugin import PLUGIN as INVOICES
from controlplane.plugins import Context
from controlplane.signals import InvoiceIssued, Signals
from controlplane.tenants.plugin import PLUGIN as TENANTS

TOKEN = "portal-token"


@dataclass
class Reply:
    status: int
    body: Any


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    issued: list[InvoiceIssued]

    async def call(self, method: str, path: str, partner_id: str, json: Any = None,
                   params: dict[str, str] | None = None) -> Reply:
        resp = await self.client.request(method, path, json=json, params=params,
                                         headers={"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": partner_id})
        text = await resp.text()
        return Reply(resp.status, msgspec.json.decode(text) if text else None)


@pytest.fixture(scope="module")
async def api(pool: asyncpg.Pool) -> AsyncIterator[Api]:
    issued: list[InvoiceIssued] = []
    signals = Signals()

    async def note(payload: InvoiceIssued) -> None:
        issued.append(payload)

    signals.invoice_issued.connect(note)
    context = Context(config=Config(), pool=pool, signals=signals)
    app = make_app(service_token_value=TOKEN, probes=[], plugins=[TENANTS, EVENTS, APIKEYS, AUDIT, INVOICES],
                   context=context)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Api(client, issued)
    finally:
        await client.close()


async def test_jurisdictions_and_the_tenant_assignment_change_new_invoices_only(
        api: Api, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        pid = await partner(conn)
        tid = await tenant(conn, pid, created=OCT - timedelta(days=40), extensions=5)
        prefix = await conn.fetchval("SELECT sip_prefix FROM tenants WHERE id = $1", tid)
    bad = await api.call("POST", "/v1/tax-jurisdictions", pid, {"name": "", "code": "no spaces", "rate": "8,5"})
    assert bad.status == 422
    assert sorted(e["field"] for e in bad.body["errors"]) == ["code", "name", "rate"]
    assert (await api.call("POST", "/v1/tax-jurisdictions", pid,
                           {"name": "X", "code": "X", "rate": "100.5"})).status == 422
    made = await api.call("POST", "/v1/tax-jurisdictions", pid,
                          {"name": "Pulaski County", "code": "US-AR-Pulaski", "rate": "8.5"})
    assert made.status == 201 and made.body["rate"] == "8.5" and made.body["enabled"] is True
    jid = made.body["id"]
    assert (await api.call("POST", "/v1/tax-jurisdictions", pid,
                           {"name": "Again", "code": "US-AR-Pulaski", "rate": "1"})).status == 409
    put = await api.call("PUT", f"/v1/tenants/{tid}/tax-jurisdiction", pid, {"jurisdiction_id": jid})
    assert put.status == 200 and put.body["jurisdiction"]["code"] == "US-AR-Pulaski"
    assert (await api.call("PUT", f"/v1/tenants/{tid}/tax-jurisdiction", pid,
                           {"jurisdiction_id": "tax_nope"})).status == 422

    await run_invoices(pool, NOV + timedelta(minutes=5), lookup=MonthlyLookup())
    changed = await api.call("PUT", f"/v1/tax-jurisdictions/{jid}", pid,
                             {"name": "Pulaski County", "code": "US-AR-Pulaski", "rate": "10"})
    assert changed.status == 200 and changed.body["rate"] == "10"
    page = await api.call("GET", "/v1/invoices", pid, params={"tenant": prefix})
    assert page.status == 200 and len(page.body["items"]) == 1
    october = page.body["items"][0]
    assert (october["tax"], october["tax_micros"], october["total_micros"]) == (
        {"name": "Pulaski County", "rate": "8.5"}, 8_420_000, 107_420_000)  # 99.00 x 8.5 % = 8.415 -> 8.42
    december = NOV.replace(month=12) + timedelta(minutes=5)
    await run_invoices(pool, december, lookup=MonthlyLookup())
    newest = (await api.call("GET", "/v1/invoices", pid, params={"tenant": tid})).body["items"][0]
    assert (newest["tax"]["rate"], newest["tax_micros"]) == ("10", 9_900_000)
    assert (await api.call("DELETE", f"/v1/tax-jurisdictions/{jid}", pid)).status == 204
    assert (await api.call("GET", f"/v1/tenants/{tid}/tax-jurisdiction", pid)).body["jurisdiction"] is None


async def test_off_cycle_issue_void_numbering_filters_and_stats(api: Api, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        pid = await partner(conn)
        other = await partner(conn)
        tid = await tenant(conn, pid, created=OCT - timedelta(days=40))
    bad = await api.call("POST", "/v1/invoices", pid, {"tenant_id": tid, "lines": [
        {"kind": "nope", "description": "", "amount_micros": 1}]})
    assert bad.status == 422
    # the shared body reader walks structs field by field, a list's items as a whole (first fault)
    assert [e["field"] for e in bad.body["errors"]] == ["lines[0].kind"]
    nothing = await api.call("POST", "/v1/invoices", pid, {"lines": [], "extra": 1})
    assert sorted(e["field"] for e in nothing.body["errors"]) == ["extra", "lines", "tenant_id"]
    body = {"tenant_id": tid, "lines": [{"kind": "porting", "description": "Port", "amount_micros": 15_000_000},
                                        {"description": "Install", "amount_micros": 20_000_000}]}
    draft = await api.call("POST", "/v1/invoices", pid, body)
    assert draft.status == 201 and (draft.body["status"], draft.body["number"]) == ("DRAFT", None)
    assert draft.body["total_micros"] == 35_000_000 and draft.body["off_cycle"] is True
    assert (await api.call("GET", f"/v1/invoices/{draft.body['id']}", other)).status == 404
    assert (await api.call("POST", "/v1/invoices", other, body)).status == 422  # not its tenant

    assert (await api.call("PUT", "/v1/invoice-numbering", pid, {"prefix": "ACME-"})).status == 200
    issued = await api.call("POST", f"/v1/invoices/{draft.body['id']}/issue", pid)
    assert issued.status == 200 and (issued.body["status"], issued.body["number"]) == ("SENT", "ACME-000001")
    assert issued.body["due_at"] is not None
    assert api.issued[-1] == InvoiceIssued(pid, tid, draft.body["id"], 35_000_000)
    assert (await api.call("POST", f"/v1/invoices/{draft.body['id']}/issue", pid)).status == 409
    assert (await api.call("POST", f"/v1/invoices/{draft.body['id']}/void", pid)).status == 409

    async with pool.acquire() as conn, conn.transaction():  # a draft takes no payment, and keeps no trace of one
        with pytest.raises(status.TransitionRefused):
            await store.apply_payment(conn, (await api.call("POST", "/v1/invoices", pid, body)).body["id"],
                                      1_000_000, "pay:draft")
    assert await pool.fetchval("SELECT count(*) FROM tenant_invoice_payments WHERE reference = 'pay:draft'") == 0
    second = await api.call("POST", "/v1/invoices", pid, {**body, "issue": True})
    assert second.body["number"] == "ACME-000002"
    doomed = await api.call("POST", "/v1/invoices", pid, body)
    voided = await api.call("POST", f"/v1/invoices/{doomed.body['id']}/void", pid)
    assert voided.status == 200 and (voided.body["status"], voided.body["number"]) == ("VOID", None)
    assert (await api.call("GET", "/v1/invoice-numbering", pid)).body == {"prefix": "ACME-", "next_number": 3}

    assert (await api.call("GET", "/v1/invoices", pid, params={"number": "ACME-000002"})).body["items"][0][
        "id"] == second.body["id"]
    assert len((await api.call("GET", "/v1/invoices", pid, params={"status": "VOID"})).body["items"]) == 1
    first_page = await api.call("GET", "/v1/invoices", pid, params={"limit": "3"})
    assert first_page.body["has_more"] is True
    rest = await api.call("GET", "/v1/invoices", pid, params={"limit": "3", "cursor": first_page.body["next_cursor"]})
    assert len(rest.body["items"]) == 1 and rest.body["has_more"] is False
    assert {i["id"] for i in first_page.body["items"]}.isdisjoint(i["id"] for i in rest.body["items"])
    stats = await api.call("GET", "/v1/invoices/stats", pid)
    assert stats.body == {"count": 2, "total_micros": 70_000_000, "paid_micros": 0, "unpaid_micros": 70_000_000,
                          "outstanding_micros": 70_000_000, "currency": "USD"}
    faults = await api.call("GET", "/v1/invoices", pid, params={"status": "LOST", "from": "yesterday",
                                                                 "tenant": "a b"})
    assert faults.status == 422 and sorted(e["field"] for e in faults.body["errors"]) == ["from", "status", "tenant"]
