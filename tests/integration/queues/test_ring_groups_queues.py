"""Ring groups, queues and music on hold over real HTTP and PostgreSQL, wired to the real flows
capability (the destinations registry) and media store: validation naming each field with
nothing changed, another tenant's objects unreachable, 409 naming the users on delete, the
realtime rows Asterisk reads, AMI queue events -> statistics and webhooks, and per-leg records."""

from __future__ import annotations

import io
import json
import struct
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cdr_ingest.callflow import CallSummary, Finished
from cdr_ingest.records import call_record_id
from controlplane.asterisk.events import parse_ami_event
from controlplane.calls.recorder import CallRecorder
from controlplane.config import AsteriskConfig, AsteriskRunMode, Config, MediaConfig
from controlplane.events.plugin import PLUGIN as EVENTS
from controlplane.flows.plugin import PLUGIN as FLOWS
from controlplane.http.app import make_app
from controlplane.moh.plugin import PLUGIN as MOH
from controlplane.plugins import Context
from controlplane.queues.plugin import PLUGIN as QUEUES
from controlplane.queues.plugin import QueueSection
from controlplane.queues.services import QueueEventFollower
from controlplane.recordings.plugin import PLUGIN as RECORDINGS
from controlplane.ring_groups.plugin import PLUGIN as RING_GROUPS
from controlplane.ring_groups.plugin import RingGroupSection
from controlplane.tenants.plugin import PLUGIN as TENANTS

TOKEN = "f3-token"


class Api:
    def __init__(self, client: TestClient) -> None:  # type: ignore[type-arg]
        self.client = client

    async def call(self, method: str, path: str, partner: str, json: Any = None, data: bytes | None = None,
                   content_type: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": partner}
        if content_type:
            headers["Content-Type"] = content_type
        resp = await self.client.request(method, path, json=json, data=data, headers=headers)
        body = await resp.json(content_type=None) if resp.status != 204 else None
        return resp.status, body


@pytest.fixture(scope="module")
async def api(pool: asyncpg.Pool, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    media = tmp_path_factory.mktemp("media")
    # Its own (empty) root: the dialplan files the tenants and flows plugins write stay in it,
    # never in the shared Asterisk root filesystem.
    rootfs = tmp_path_factory.mktemp("rootfs")
    config = Config(media=MediaConfig(dir=str(media), asterisk_dir="/srv/media"),
                    asterisk=AsteriskConfig(run=AsteriskRunMode.LOCAL, rootfs=str(rootfs)))
    app = make_app(service_token_value=TOKEN, probes=[],
                   plugins=[TENANTS, EVENTS, FLOWS, RECORDINGS, RING_GROUPS, QUEUES, MOH],
                   context=Context(config=config, pool=pool))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Api(client)
    finally:
        await client.close()


async def world(api: Api) -> tuple[str, str, str]:
    """A partner with tenants A (extensions 101, 102, 103) and B (101)."""
    status, body = await api.call("POST", "/v1/partners", "-", json={"name": "Reseller", "tier": "BUSINESS"})
    assert status == 201, body
    pid = body["id"]
    tenants = []
    for name, numbers in (("A", ("101", "102", "103")), ("B", ("101",))):
        status, body = await api.call("POST", "/v1/tenants", pid, json={"name": name, "billing_email": "b@x.co"})
        assert status == 201, body
        tenants.append(body["id"])
        for number in numbers:
            status, body = await api.call("POST", f"/v1/tenants/{tenants[-1]}/extensions", pid,
                                          json={"number": number, "display_name": f"Ext {number}"})
            assert status == 201, body
    return pid, tenants[0], tenants[1]


def fields(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body["errors"]}


async def test_ring_groups_validate_isolate_and_refuse_deleting_what_is_used(api: Api, pool: asyncpg.Pool) -> None:
    pid, a, b = await world(api)
    rg_a = f"/v1/tenants/{a}/ring-groups"
    good = {"name": "Sales", "members": [{"kind": "extension", "number": "101"},
                                         {"kind": "extension", "number": "102"},
                                         {"kind": "external", "number": "+14155550123"}],
            "no_answer": {"kind": "extension", "ref": "103"}}
    status, group = await api.call("POST", rg_a, pid, json=good)
    assert status == 201, group
    assert (group["strategy"], group["ring_seconds"], len(group["members"])) == ("ring_all", 20, 3)

    # bad input: every field named, nothing stored
    bad = {"name": "", "members": [{"kind": "extension", "number": "104"},
                                       {"kind": "external", "number": "+1;Dial"}],
           "ring_seconds": 2}
    status, body = await api.call("POST", rg_a, pid, json=bad)
    assert status == 422 and fields(body) == {"name", "members.1.number", "ring_seconds"}, body
    status, body = await api.call("POST", rg_a, pid, json={**good, "members": [{"kind": "extension", "number": "104"}]})
    assert status == 422 and fields(body) == {"members.0.number"}, body
    assert (await api.call("GET", rg_a, pid))[1]["items"] == [group]

    # another tenant's objects: a queue of B as no_answer is "no such queue in this tenant"
    status, queue_b = await api.call("POST", f"/v1/tenants/{b}/queues", pid,
                                     json={"name": "B support", "members": [{"number": "101"}]})
    assert status == 201, queue_b
    status, body = await api.call("POST", rg_a, pid, json={**good, "no_answer": {"kind": "queue", "ref": queue_b["id"]}})
    assert status == 422 and fields(body) == {"no_answer"}, body
    status, body = await api.call("PATCH", f"{rg_a}/{group['id']}", pid,
                                  json={"no_answer": {"kind": "queue", "ref": queue_b["id"]}})
    assert status == 422 and fields(body) == {"no_answer"}, body
    assert (await api.call("GET", f"{rg_a}/{group['id']}", pid))[1] == group  # unchanged
    # B's extension 101 exists, but a member is always A's own endpoint
    assert (await api.call("GET", f"/v1/tenants/{b}/ring-groups/{group['id']}", pid))[0] == 404
    assert (await api.call("DELETE", f"/v1/tenants/{b}/ring-groups/{group['id']}", pid))[0] == 404
    assert (await api.call("GET", f"/v1/tenants/{a}/queues/{queue_b['id']}", pid))[0] == 404

    # a queue of A overflowing into the ring group: the group cannot be deleted while used
    status, queue = await api.call("POST", f"/v1/tenants/{a}/queues", pid, json={
        "name": "Support", "strategy": "round_robin", "members": [{"number": "101"}, {"number": "102", "penalty": 2}],
        "max_wait_seconds": 60, "max_callers": 3, "overflow": {"kind": "ring_group", "ref": group["id"]}})
    assert status == 201, queue
    status, body = await api.call("DELETE", f"{rg_a}/{group['id']}", pid)
    assert status == 409 and body["used_by"] == [{"kind": "queue", "ref": queue["id"]}], body

    # what Asterisk reads: realtime queue and members (A's endpoints only), and the flows lines
    prefix = await pool.fetchval("SELECT sip_prefix FROM tenants WHERE id = $1", a)
    row = await pool.fetchrow("SELECT * FROM queues WHERE name = $1", f"q-{queue['id']}")
    assert row is not None
    assert (row["strategy"], row["maxlen"], row["musiconhold"], row["timeout"]) == \
        ("rrmemory", 3, f"moh-{prefix}", 15)
    members = await pool.fetch("SELECT interface, penalty FROM queue_members WHERE queue_name = $1 ORDER BY 1",
                               f"q-{queue['id']}")
    assert [(m["interface"], m["penalty"]) for m in members] == [(f"PJSIP/{prefix}_101", 0),
                                                                  (f"PJSIP/{prefix}_102", 2)]
    async with pool.acquire() as proxy:
        conn = cast(asyncpg.Connection, proxy)
        rendered_rg = await RingGroupSection().render(conn, [a, b])
        rendered_q = await QueueSection().render(conn, [a, b])
    assert set(rendered_rg) == {a} and set(rendered_q) == {a, b}
    assert f"Dial(PJSIP/{prefix}_101&PJSIP/{prefix}_102&Local/+14155550123@{prefix}-dial/n,20)" in \
        "\n".join(rendered_rg[a])
    assert f" same => n,Goto({prefix}-flows,rg-{group['id']},1)" in rendered_q[a]

    # membership change: a kept member keeps its realtime key (not dropped while ringing)
    key = await pool.fetchval("SELECT uniqueid FROM queue_members WHERE interface = $1", f"PJSIP/{prefix}_101")
    status, queue = await api.call("PATCH", f"/v1/tenants/{a}/queues/{queue['id']}", pid,
                                   json={"members": [{"number": "101"}, {"number": "103"}]})
    assert status == 200 and [m["number"] for m in queue["members"]] == ["101", "103"], queue
    assert await pool.fetchval("SELECT uniqueid FROM queue_members WHERE interface = $1",
                               f"PJSIP/{prefix}_101") == key

    assert (await api.call("DELETE", f"/v1/tenants/{a}/queues/{queue['id']}", pid))[0] == 204
    assert (await api.call("DELETE", f"{rg_a}/{group['id']}", pid))[0] == 204
    assert await pool.fetchval("SELECT count(*) FROM queue_members WHERE queue_name = $1", f"q-{queue['id']}") == 0


def ami(name: str, queue_id: str, uniqueid: str, at: datetime, **extra: str) -> Any:
    return parse_ami_event({"Event": name, "Queue": f"q-{queue_id}", "Uniqueid": uniqueid,
                            "CallerIDNum": "+12125550111", "Timestamp": f"{at.timestamp():.6f}", **extra})


async def test_queue_events_become_statistics_and_webhooks(api: Api, pool: asyncpg.Pool) -> None:
    pid, a, _ = await world(api)
    status, queue = await api.call("POST", f"/v1/tenants/{a}/queues", pid,
                                   json={"name": "Q", "members": [{"number": "101"}, {"number": "102"}]})
    assert status == 201, queue
    follower = QueueEventFollower(pool)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    qid = queue["id"]
    for i in range(4):
        await follower(ami("QueueCallerJoin", qid, f"c{i}", t0 + timedelta(seconds=i), Position=str(i + 1)))
    await follower(ami("QueueCallerJoin", qid, "c0", t0))  # repeated: ignored
    await follower(ami("QueueCallerLeave", qid, "c0", t0 + timedelta(seconds=10)))
    await follower(ami("AgentConnect", qid, "c0", t0 + timedelta(seconds=10), MemberName="101", HoldTime="10"))
    await follower(ami("AgentConnect", qid, "c1", t0 + timedelta(seconds=21), MemberName="102", HoldTime="20"))
    await follower(ami("QueueCallerAbandon", qid, "c2", t0 + timedelta(seconds=32), HoldTime="30"))
    await follower(ami("QueueCallerLeave", qid, "c2", t0 + timedelta(seconds=32)))
    await follower(ami("QueueCallerAbandon", qid, "c2", t0 + timedelta(seconds=33)))  # repeated
    await follower(ami("QueueCallerJoin", "00000000-0000-4000-8000-000000000000", "x", t0))  # not a queue

    status, stats = await api.call("GET", f"/v1/tenants/{a}/queues/{qid}/stats", pid)
    assert status == 200, stats
    assert (stats["waiting"], stats["answered"], stats["abandoned"], stats["other"], stats["average_wait_s"]) == \
        (1, 2, 1, 0, 15)
    events = await pool.fetch("SELECT type, body FROM events WHERE tenant_id = $1 AND type LIKE 'queue.%'"
                              " ORDER BY seq", a)
    assert [e["type"] for e in events].count("queue.caller_joined") == 4
    assert [e["type"] for e in events].count("queue.caller_answered") == 2
    assert [e["type"] for e in events].count("queue.caller_abandoned") == 1
    answered = json.loads(next(e["body"] for e in events if e["type"] == "queue.caller_answered"))
    assert answered["data"]["queue_id"] == qid and answered["data"]["answered_by"] == "101", answered
    assert (await api.call("GET", f"/v1/tenants/{a}/queues/{qid}/stats", pid, json=None))[0] == 200
    status, body = await api.call("GET", f"/v1/tenants/{a}/queues/{qid}/stats?since=yesterday", pid)
    assert status == 422 and fields(body) == {"since"}


def wav(rate: int, channels: int, seconds: float) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = int(rate * seconds)
        w.writeframes(b"".join(struct.pack("<h", (i * 37) % 20000 - 10000) * channels for i in range(frames)))
    return out.getvalue()


async def test_music_on_hold_uploads_are_validated_and_become_the_tenants_class(
        api: Api, pool: asyncpg.Pool, tmp_path: Path) -> None:
    pid, a, b = await world(api)
    base = f"/v1/tenants/{a}/music-on-hold"
    status, body = await api.call("GET", base, pid)
    prefix = await pool.fetchval("SELECT sip_prefix FROM tenants WHERE id = $1", a)
    assert status == 200 and body == {"tenant_id": a, "moh_class": f"moh-{prefix}", "files": []}
    for data, ctype in ((b"ID3\x03not a wav", "audio/mpeg"), (b"", "audio/wav")):
        status, body = await api.call("PUT", f"{base}/files/jazz", pid, data=data, content_type=ctype)
        assert status == 422 and fields(body) == {"audio"}, body
    status, body = await api.call("PUT", f"{base}/files/Bad%20Name", pid, data=wav(8000, 1, 0.5),
                                  content_type="audio/wav")
    assert status == 422 and fields(body) == {"name"}, body
    assert await pool.fetchval("SELECT count(*) FROM musiconhold WHERE name = $1", f"moh-{prefix}") == 0

    status, body = await api.call("PUT", f"{base}/files/jazz", pid, data=wav(16000, 2, 2.0), content_type="audio/wav")
    assert status == 200 and abs(body["seconds"] - 2.0) < 0.01 and body["bytes"] == 44 + 2 * 16000, body
    rows = await pool.fetch("SELECT * FROM musiconhold_entry WHERE name = $1", f"moh-{prefix}")
    assert [(r["position"], r["entry"]) for r in rows] == [(0, f"/srv/media/{a}/moh/jazz")]
    assert await pool.fetchval("SELECT mode FROM musiconhold WHERE name = $1", f"moh-{prefix}") == "playlist"
    # another tenant's class is untouched and its files unreachable from A's path
    status, body = await api.call("GET", f"/v1/tenants/{b}/music-on-hold", pid)
    assert body["files"] == []
    assert (await api.call("DELETE", f"/v1/tenants/{b}/music-on-hold/files/jazz", pid))[0] == 404
    assert (await api.call("DELETE", f"{base}/files/jazz", pid))[0] == 204
    assert await pool.fetchval("SELECT count(*) FROM musiconhold WHERE name = $1", f"moh-{prefix}") == 0


async def test_a_call_with_an_external_leg_records_each_billed_leg_once(api: Api, pool: asyncpg.Pool) -> None:
    pid, a, _ = await world(api)
    recorder = CallRecorder(pool)
    t0 = datetime(2026, 5, 4, 14, 0, tzinfo=UTC)
    linkedid = f"{t0.timestamp():.0f}.f3"
    call = CallSummary(call_id=linkedid, tenant_id=a, inbound=True, trunk_used=False, dialed="+14155550100",
                       caller_num="+12125550111", caller_channel="PJSIP/carrier-01", answered_by="Local/x;1",
                       started_at=t0, answered_at=t0 + timedelta(seconds=3), ended_at=t0 + timedelta(seconds=93),
                       dial_status="ANSWER", hangup_cause=16)
    leg = CallSummary(call_id=linkedid, tenant_id=a, inbound=False, trunk_used=True, dialed="+14155550123",
                      caller_num="+12125550111", caller_channel="PJSIP/carrier-05", answered_by="PJSIP/carrier-05",
                      started_at=t0, answered_at=t0 + timedelta(seconds=3), ended_at=t0 + timedelta(seconds=93),
                      dial_status="ANSWER", hangup_cause=16, leg="PJSIP/carrier-05")
    for _ in range(2):  # the live path, then the same call again (the CDR reconciler): rated once
        await recorder.write_batch([Finished(call), Finished(leg)])
        await recorder.handle(Finished(leg))
    rows = await pool.fetch("SELECT id, leg, direction, answered_s FROM call_records WHERE linkedid = $1 ORDER BY leg",
                            linkedid)
    assert [(r["id"], r["leg"], r["direction"], r["answered_s"]) for r in rows] == [
        (call_record_id(linkedid), "", "inbound", 90),
        (call_record_id(linkedid, "PJSIP/carrier-05"), "PJSIP/carrier-05", "outbound", 90)]
    types = [r["type"] for r in await pool.fetch("SELECT type FROM events WHERE tenant_id = $1 ORDER BY seq", a)
             if r["type"].startswith(("call.", "inbound_call."))]
    # the call's own progress and completion; the leg adds exactly one call.completed
    assert types.count("call.completed") == 1 and types.count("inbound_call.completed") == 1
    assert "call.initiated" not in types and "call.answered" not in types
    usage = await pool.fetch("SELECT call_class, calls FROM tenant_usage WHERE tenant_id = $1", a)
    assert sum(u["calls"] for u in usage) == 2
