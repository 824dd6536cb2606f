"""The flows RPC and the destinations registry against a real PostgreSQL: typed destinations
validated per tenant (422 naming every field, nothing changed), 409 destination_in_use naming
the users, loops refused, DID routes, events/audit, and what the applier renders and sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from inventory_support import buy_did
from tenants_client import PLATFORM_TOKEN, TOKEN, Rpc

from controlplane.config import Config
from controlplane.flows.applier import FlowsApplier, render_contexts
from controlplane.flows.plugin import FlowsPlugin
from controlplane.http.app import make_app
from controlplane.plugins import Context
from controlplane.shared.audio import write_wav
from controlplane.shared.media import MediaKey, MediaKind
from controlplane.tenants.plugin import PLUGIN as TENANTS

NOBODY = "99999999-9999-4999-8999-999999999999"


class DictMedia:
    """A media store in memory (the local-directory one is the recordings capability's)."""

    def __init__(self) -> None:
        self.files: dict[MediaKey, bytes] = {}

    async def put(self, key: MediaKey, data: bytes) -> None:
        self.files[key] = data

    async def get(self, key: MediaKey) -> bytes | None:
        return self.files.get(key)

    async def delete(self, key: MediaKey) -> None:
        self.files.pop(key, None)

    async def purge_tenant(self, tenant_id: str) -> int:
        gone = [k for k in self.files if k.tenant_id == tenant_id]
        for k in gone:
            del self.files[k]
        return len(gone)

    def playback_name(self, key: MediaKey) -> str:
        return f"/srv/media/{key.tenant_id}/{key.kind.value}/{key.name}"


@asynccontextmanager
async def flows_rpc(pool: asyncpg.Pool) -> AsyncIterator[tuple[Rpc, Context]]:
    context = Context(config=Config(), pool=pool, media=DictMedia())
    app = make_app(service_token_value=TOKEN, probes=[], plugins=[TENANTS, FlowsPlugin()], context=context,
                   platform_token_value=PLATFORM_TOKEN)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Rpc(client), context
    finally:
        await client.close()


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool) -> AsyncIterator[dict[str, Any]]:
    async with flows_rpc(pool) as (rpc, context):
        _, partner = await rpc.call("POST", "/v1/partners", json={"name": "Flows Co", "tier": "BUSINESS"})
        pid = partner["id"]
        tenants = {}
        for prefix in ("facme", "fbeta"):
            _, t = await rpc.call("POST", "/v1/tenants", partner=pid,
                                  json={"name": prefix, "billing_email": "t@t.co", "sip_prefix": prefix,
                                        "timezone": "America/Chicago"})
            tenants[prefix] = t["id"]
            for number in ("101", "102"):
                status, _ = await rpc.call("POST", f"/v1/tenants/{t['id']}/extensions", partner=pid,
                                           json={"number": number, "display_name": number})
                assert status == 201
        did = await buy_did(pool, pid, "+15015550777", tenant_id=tenants["facme"])
        yield {"rpc": rpc, "context": context, "pid": pid, "acme": tenants["facme"], "beta": tenants["fbeta"],
               "did": did}


def ivr_body(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Main", "options": {"2": {"kind": "extension", "ref": "102"}},
                            "timeout_destination": {"kind": "extension", "ref": "101"}}
    body.update(kw)
    return body


async def count(pool: asyncpg.Pool, table: str) -> int:
    return int(await pool.fetchval(f"SELECT count(*) FROM {table}"))


async def test_ivr_create_renders_in_its_tenant_only(world: dict[str, Any], pool: asyncpg.Pool) -> None:
    rpc, pid, acme = world["rpc"], world["pid"], world["acme"]
    status, ivr = await rpc.call("POST", f"/v1/tenants/{acme}/ivrs", partner=pid, json=ivr_body())
    assert status == 201, ivr
    assert ivr["options"]["2"] == {"kind": "extension", "ref": "102"}
    status, route = await rpc.call("PUT", f"/v1/tenants/{acme}/dids/{world['did']}/route", partner=pid,
                                   json={"destination": {"kind": "ivr", "ref": ivr["id"]}})
    assert status == 200 and route["number"] == "+15015550777", route
    async with pool.acquire() as conn:
        rendered = await render_contexts(conn, world["context"].flow_sections, None)
    acme_flows = {(e, n): p for (e, n), p in rendered[acme][1].items()}
    assert acme_flows[("did-15015550777", 1)].app == "GosubIf"  # the DID's recording policy, if any, first
    assert acme_flows[("did-15015550777", 2)].data == f"facme-flows,ivr-{ivr['id']},1"
    assert any(e == f"ivr-{ivr['id']}" for e, _ in acme_flows)
    beta = rendered[world["beta"]][1]
    assert not any(ivr["id"] in e or "facme" in p.data for (e, _), p in beta.items())
    kinds = [r["type"] for r in await pool.fetch("SELECT type FROM events WHERE tenant_id = $1", acme)]
    assert "ivr.created" in kinds and "phone_number.routed" in kinds
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE resource = 'ivr'") >= 1


async def test_another_tenants_objects_are_refused_naming_each_field(world: dict[str, Any],
                                                                    pool: asyncpg.Pool) -> None:
    rpc, pid, acme, beta = world["rpc"], world["pid"], world["acme"], world["beta"]
    _, beta_ivr = await rpc.call("POST", f"/v1/tenants/{beta}/ivrs", partner=pid, json=ivr_body())
    before = await count(pool, "ivr_menus"), await count(pool, "flow_references")
    status, problem = await rpc.call("POST", f"/v1/tenants/{acme}/ivrs", partner=pid, json=ivr_body(options={
        "2": {"kind": "ivr", "ref": beta_ivr["id"]}, "3": {"kind": "time_condition", "ref": NOBODY},
        "4": {"kind": "extension", "ref": "999"}}))
    assert status == 422, problem
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {"options.2", "options.3", "options.4"}, problem
    assert (await count(pool, "ivr_menus"), await count(pool, "flow_references")) == before
    status, problem = await rpc.call("PUT", f"/v1/tenants/{acme}/dids/{world['did']}/route", partner=pid,
                                     json={"destination": {"kind": "ivr", "ref": beta_ivr["id"]}})
    assert status == 422 and problem["errors"][0]["field"] == "destination"
    # beta cannot route acme's DID at all
    status, _ = await rpc.call("PUT", f"/v1/tenants/{beta}/dids/{world['did']}/route", partner=pid,
                               json={"destination": {"kind": "hangup"}})
    assert status == 404


async def test_bad_fields_are_all_named(world: dict[str, Any], pool: asyncpg.Pool) -> None:
    rpc, pid, acme = world["rpc"], world["pid"], world["acme"]
    before = await count(pool, "ivr_menus")
    status, problem = await rpc.call("POST", f"/v1/tenants/{acme}/ivrs", partner=pid, json=ivr_body(
        name="", timeout_seconds=0, prompt={"kind": "builtin", "ref": "x,1)"},
        options={"#": {"kind": "hangup"}, "5": {"kind": "did", "ref": "+15015550777"},
                 "6": {"kind": "extension", "ref": "10;1"}}))
    assert status == 422
    fields = {e["field"] for e in problem["errors"]}
    assert {"name", "timeout_seconds", "prompt.ref", "options.#", "options.5.kind", "options.6.ref"} <= fields
    # a control character is refused before any service sees it, naming the field too
    status, problem = await rpc.call("POST", f"/v1/tenants/{acme}/ivrs", partner=pid, json=ivr_body(
        prompt={"kind": "upload", "ref": "x\n[fbeta-internal]"}))
    assert status == 422 and problem["errors"][0]["field"] == "prompt.ref"
    assert await count(pool, "ivr_menus") == before
    status, problem = await rpc.call("POST", f"/v1/tenants/{acme}/time-conditions", partner=pid, json={
        "name": "Hours", "hours": [{"days": ["mon", "xyz"], "start": "25:00", "end": "08:00"},
                                   {"days": ["tue"], "start": "10:00", "end": "09:00"}],
        "holidays": ["2026-02-30"], "override": "maybe",
        "open_destination": {"kind": "extension", "ref": "101"}, "closed_destination": {"kind": "nowhere"}})
    assert status == 422
    fields = {e["field"] for e in problem["errors"]}
    assert {"hours.0.days", "hours.0.start", "hours.1.end", "holidays.0", "override",
            "closed_destination.kind"} <= fields, fields


async def test_delete_in_use_is_409_naming_the_users(world: dict[str, Any], pool: asyncpg.Pool) -> None:
    rpc, pid, acme = world["rpc"], world["pid"], world["acme"]
    _, sub = await rpc.call("POST", f"/v1/tenants/{acme}/ivrs", partner=pid, json=ivr_body(name="Sub"))
    _, main = await rpc.call("POST", f"/v1/tenants/{acme}/ivrs", partner=pid, json=ivr_body(
        name="Main2", options={"1": {"kind": "ivr", "ref": sub["id"]}}))
    status, problem = await rpc.call("DELETE", f"/v1/tenants/{acme}/ivrs/{sub['id']}", partner=pid)
    assert status == 409 and problem["code"] == "destination_in_use", problem
    assert problem["used_by"] == [{"kind": "ivr", "ref": main["id"]}]
    assert await pool.fetchval("SELECT 1 FROM ivr_menus WHERE id = $1", sub["id"])
    assert (await rpc.call("DELETE", f"/v1/tenants/{acme}/ivrs/{main['id']}", partner=pid))[0] == 204
    assert (await rpc.call("DELETE", f"/v1/tenants/{acme}/ivrs/{sub['id']}", partner=pid))[0] == 204
    assert not await pool.fetchval("SELECT 1 FROM flow_references WHERE owner_ref = $1", main["id"])


async def test_loops_are_refused_menus_may_go_back(world: dict[str, Any]) -> None:
    rpc, pid, acme = world["rpc"], world["pid"], world["acme"]
    closed = {"kind": "hangup"}
    _, a = await rpc.call("POST", f"/v1/tenants/{acme}/time-conditions", partner=pid, json={
        "name": "A", "open_destination": {"kind": "extension", "ref": "101"}, "closed_destination": closed})
    _, b = await rpc.call("POST", f"/v1/tenants/{acme}/time-conditions", partner=pid, json={
        "name": "B", "open_destination": {"kind": "time_condition", "ref": a["id"]}, "closed_destination": closed})
    status, problem = await rpc.call("PUT", f"/v1/tenants/{acme}/time-conditions/{a['id']}", partner=pid, json={
        "name": "A", "open_destination": {"kind": "time_condition", "ref": b["id"]}, "closed_destination": closed})
    assert status == 422 and problem["errors"][0]["field"] == "open_destination", problem
    # an IVR whose option 9 goes back to itself (the caller's choice) is fine
    _, menu = await rpc.call("POST", f"/v1/tenants/{acme}/ivrs", partner=pid, json=ivr_body(name="Loop"))
    status, menu2 = await rpc.call("PUT", f"/v1/tenants/{acme}/ivrs/{menu['id']}", partner=pid, json=ivr_body(
        name="Loop", options={"9": {"kind": "ivr", "ref": menu["id"]}}))
    assert status == 200, menu2


async def test_hostile_path_ids(world: dict[str, Any]) -> None:
    rpc, pid, acme = world["rpc"], world["pid"], world["acme"]
    for path in (f"/v1/tenants/{acme}/ivrs/..%2Fx", f"/v1/tenants/{acme}/ivrs/{NOBODY}",
                 f"/v1/tenants/{world['beta']}/ivrs/{NOBODY}"):
        assert (await rpc.call("GET", path, partner=pid))[0] == 404


async def test_unassigned_behaviour(world: dict[str, Any], pool: asyncpg.Pool) -> None:
    rpc, pid, acme = world["rpc"], world["pid"], world["acme"]
    status, settings = await rpc.call("PUT", f"/v1/tenants/{acme}/call-flow-settings", partner=pid,
                                      json={"unassigned_destination": {"kind": "extension", "ref": "101"}})
    assert status == 200 and settings["unassigned_destination"]["ref"] == "101"
    status, problem = await rpc.call("PUT", f"/v1/tenants/{acme}/call-flow-settings", partner=pid,
                                     json={"unassigned_destination": {"kind": "extension", "ref": "555"}})
    assert status == 422 and problem["errors"][0]["field"] == "unassigned_destination"
    async with pool.acquire() as conn:
        rendered = await render_contexts(conn, world["context"].flow_sections, [acme])
    assert rendered[acme][1][("did", 1)].data == "facme-flows,ext-101,1"


class RecordingAmi:
    """Takes the AMI actions the applier sends (no Asterisk in this test: e2e has the real one)."""

    def __init__(self) -> None:
        self.actions: list[dict[str, str]] = []

    async def action(self, action: dict[str, str], **_: Any) -> dict[str, str]:
        self.actions.append(action)
        return {"Response": "Success"}

    async def wait_fully_booted(self, timeout: float | None = None) -> None:
        return None


async def test_applier_sends_only_the_difference(world: dict[str, Any], pool: asyncpg.Pool, tmp_path: Path) -> None:
    rpc, pid, acme = world["rpc"], world["pid"], world["acme"]
    ami = RecordingAmi()
    applier = FlowsApplier(pool, world["context"].flow_sections, etc_dir=tmp_path, ami=ami)  # type: ignore[arg-type]
    assert await applier.restore() >= 2
    assert (tmp_path / "extensions_flows_facme.conf").read_text().count("[facme-flows]") == 1
    ami.actions.clear()
    _, tc = await rpc.call("POST", f"/v1/tenants/{acme}/time-conditions", partner=pid, json={
        "name": "Night", "override": "closed", "open_destination": {"kind": "extension", "ref": "101"},
        "closed_destination": {"kind": "extension", "ref": "102"}})
    await applier.apply([acme])
    assert ami.actions == [{"Action": "DialplanExtensionAdd", "Context": "facme-flows",
                            "Extension": f"tc-{tc['id']}", "Priority": "1", "Application": "Goto",
                            "ApplicationData": "facme-flows,ext-102,1", "Replace": "yes"}]
    assert f"exten => tc-{tc['id']},1,Goto(facme-flows,ext-102,1)" in (
        tmp_path / "extensions_flows_facme.conf").read_text()
    ami.actions.clear()
    await rpc.call("DELETE", f"/v1/tenants/{acme}/time-conditions/{tc['id']}", partner=pid)
    await applier.apply([acme])
    assert ami.actions == [{"Action": "DialplanExtensionRemove", "Context": "facme-flows",
                            "Extension": f"tc-{tc['id']}"}]


async def test_dialplan_changed_rerenders_only_the_tenants_that_moved(world: dict[str, Any], pool: asyncpg.Pool,
                                                                       tmp_path: Path) -> None:
    rpc, pid, acme, beta = world["rpc"], world["pid"], world["acme"], world["beta"]
    applier = FlowsApplier(pool, world["context"].flow_sections, etc_dir=tmp_path, ami=RecordingAmi())  # type: ignore[arg-type]
    await applier.restore()
    assert await applier._moved() == set()
    status, _ = await rpc.call("POST", f"/v1/tenants/{beta}/extensions", partner=pid,
                               json={"number": "177", "display_name": "New"})
    assert status == 201
    assert await applier._moved() == {beta}
    assert acme not in await applier._moved()


async def test_prompt_upload_validated_then_played(world: dict[str, Any], pool: asyncpg.Pool) -> None:
    rpc, pid, acme = world["rpc"], world["pid"], world["acme"]
    media = world["context"].media
    url = f"/v1/tenants/{acme}/prompts/main-menu"
    for bad in (b"ID3\x04\x00 not a wav", b"", write_wav([0] * 8000 * 61)):
        resp = await rpc.client.put(url, data=bad, headers={"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": pid,
                                                             "Content-Type": "audio/wav"})
        problem = await resp.json()
        assert resp.status == 422 and problem["errors"][0]["field"] == "body", problem
    assert media.files == {}
    resp = await rpc.client.put(url, data=write_wav([1000, -1000] * 4000, rate=16000),
                                headers={"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": pid,
                                         "Content-Type": "audio/wav"})
    assert resp.status == 201, await resp.text()
    stored = media.files[MediaKey(acme, MediaKind.PROMPT, "main-menu")]
    assert stored[:4] == b"RIFF" and len(stored) == 44 + 8000 * 2 // 2  # 0.5 s at 8 kHz, 16-bit
    status, ivr = await rpc.call("POST", f"/v1/tenants/{acme}/ivrs", partner=pid,
                                 json=ivr_body(prompt={"kind": "upload", "ref": "main-menu"}))
    assert status == 201
    async with pool.acquire() as conn:
        rendered = await render_contexts(conn, world["context"].flow_sections, [acme])
    read = rendered[acme][1][(f"ivr-{ivr['id']}", 4)]
    assert read.app == "Read" and f"/srv/media/{acme}/prompt/main-menu" in read.data
    bad_name = await rpc.client.put(f"/v1/tenants/{acme}/prompts/Main_Menu", data=b"x",
                                    headers={"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": pid})
    assert bad_name.status == 422
