"""Every text that can reach Asterisk, sent with an injection corpus: 422 naming
the field, and neither the realtime rows nor the rendered dialplan change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from inventory_support import buy_did
from tenants_client import PLATFORM_TOKEN, TOKEN, Rpc, rpc_for

from controlplane.tenants import realtime_store
from provisioning.dialplan import render_dialplan

CORPUS = ["a\nb", "acme]\n[evil", "x;comment", "a,b", "${SHELL(id)}", "nul\x00byte", 'say "hi"', "it's",
          "A" * 10_240, "[section]", "ACME\r\nexten => _X.,1,Dial(PJSIP/beta_101)", "#include /etc/passwd",
          "ok(", "ünïcode ☎"]


@pytest.fixture(scope="module")
async def setup(pool: asyncpg.Pool) -> AsyncIterator[tuple[Rpc, str, str, str, str]]:
    async with rpc_for(pool) as rpc:
        _, partner = await rpc.call("POST", "/v1/partners", json={"name": "Injector", "tier": "BUSINESS"})
        pid = partner["id"]
        _, tenant = await rpc.call("POST", "/v1/tenants", partner=pid,
                                   json={"name": "Target", "billing_email": "t@t.co", "sip_prefix": "target"})
        _, ext = await rpc.call("POST", f"/v1/tenants/{tenant['id']}/extensions", partner=pid,
                                json={"number": "101", "display_name": "Victim"})
        did = await buy_did(pool, pid, "+15015550999")
        yield rpc, pid, tenant["id"], ext["id"], did


async def snapshot(pool: asyncpg.Pool) -> tuple[Any, ...]:
    async with pool.acquire() as conn:
        state = await realtime_store.load_state(conn)
        rows = tuple([await realtime_store.fetch_rows(conn, t) for t in ("ps_endpoints", "ps_auths", "ps_aors")])
    return render_dialplan(state), rows


def requests(pid: str, tid: str, eid: str, did: str, bad: str) -> list[tuple[str, str, dict[str, Any], str]]:
    """(method, path, body, field at fault); POST /v1/dids is sent with the platform token (its only caller)."""
    t, e = f"/v1/tenants/{tid}", f"/v1/tenants/{tid}/extensions"
    return [
        ("POST", "/v1/partners", {"name": bad, "tier": "STARTER"}, "name"),
        ("POST", "/v1/tenants", {"name": bad, "billing_email": "a@b.co"}, "name"),
        ("POST", "/v1/tenants", {"name": "Ok", "billing_email": bad}, "billing_email"),
        ("POST", "/v1/tenants", {"name": "Ok", "billing_email": "a@b.co", "sip_prefix": bad}, "sip_prefix"),
        ("POST", "/v1/tenants", {"name": "Ok", "billing_email": "a@b.co", "default_cnam": bad}, "default_cnam"),
        ("POST", "/v1/tenants", {"name": "Ok", "billing_email": "a@b.co", "timezone": bad}, "timezone"),
        ("PATCH", t, {"name": bad}, "name"),
        ("PATCH", t, {"default_cnam": bad}, "default_cnam"),
        ("PATCH", t, {"timezone": bad}, "timezone"),
        ("PUT", "/v1/tenant-defaults", {"default_cnam": bad}, "default_cnam"),
        ("POST", e, {"number": bad, "display_name": "Ok"}, "number"),
        ("POST", e, {"number": "150", "display_name": bad}, "display_name"),
        ("PATCH", f"{e}/{eid}", {"display_name": bad}, "display_name"),
        ("POST", "/v1/dids", {"number": bad}, "number"),
        ("POST", "/v1/dids", {"number": "+15015550998", "cnam": bad}, "cnam"),
        ("PATCH", f"/v1/dids/{did}", {"cnam": bad}, "cnam"),
    ]


@pytest.mark.parametrize("bad", CORPUS)
async def test_injection_is_refused_and_config_unchanged(setup: tuple[Rpc, str, str, str, str], pool: asyncpg.Pool,
                                                         bad: str) -> None:
    rpc, pid, tid, eid, did = setup
    before = await snapshot(pool)
    for method, path, body, field in requests(pid, tid, eid, did, bad):
        token = PLATFORM_TOKEN if (method, path) == ("POST", "/v1/dids") else TOKEN
        status, problem = await rpc.call(method, path, partner=pid, json=body, token=token)
        assert status == 422, (method, path, field, bad[:40], problem)
        assert problem["field"] == field, problem
        assert problem["status"] == 422 and problem["type"]
    assert await snapshot(pool) == before


async def test_wrong_types_and_unknown_fields_name_the_field(setup: tuple[Rpc, str, str, str, str]) -> None:
    rpc, pid, tid, _, _ = setup
    status, problem = await rpc.call("POST", f"/v1/tenants/{tid}/extensions", partner=pid,
                                     json={"number": 101, "display_name": "Ok"})
    assert status == 422 and problem["field"] == "number"
    status, problem = await rpc.call("POST", f"/v1/tenants/{tid}/extensions", partner=pid,
                                     json={"number": "102", "display_name": "Ok", "context": "beta-internal"})
    assert status == 422 and problem["field"] == "context"
