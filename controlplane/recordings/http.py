"""Recording policies, recordings (download in the caller's tenant scope) and media retention
(documented in openapi.yaml)."""

from __future__ import annotations

import re

from aiohttp import web

from controlplane.http.body import json_response, read_body
from controlplane.http.caller import partner_id
from controlplane.http.pagination import newest_before, page_limit
from controlplane.http.paths import ID, UUID, path_id, tenant_id, wav_download
from controlplane.http.problems import Problem
from controlplane.recordings.models import Policy, PolicyBody, Recording, Retention
from controlplane.recordings.services import RecordingServices
from controlplane.recordings.store import RecordingRow
from controlplane.shared.pagination import ListPage, Sort, encode_cursor

services_key = web.AppKey("recording_services", RecordingServices)
TENANT = "/v1/tenants/{tenant_id}"
_REF = re.compile(r"\+?[0-9a-f-]{1,40}")


def _recording(row: RecordingRow) -> Recording:
    return Recording(id=row.id, tenant_id=row.tenant_id, call_id=row.call_id, scope=row.scope, ref=row.ref,
                     started_at=row.started_at, duration_s=row.duration_s, size_bytes=row.size_bytes)


async def list_policies(request: web.Request) -> web.Response:
    items = await request.app[services_key].list_policies(partner_id(request), tenant_id(request))
    return json_response(ListPage.of([Policy(scope=p.scope.value, ref=p.ref, mode=p.mode.value) for p in items]))


async def put_policy(request: web.Request) -> web.Response:
    body = await read_body(request, PolicyBody)
    policy = await request.app[services_key].put_policy(
        partner_id(request), tenant_id(request), request.match_info["scope"],
        request.match_info["ref"], body.mode)
    return json_response(Policy(scope=policy.scope.value, ref=policy.ref, mode=policy.mode.value))


async def delete_policy(request: web.Request) -> web.Response:
    await request.app[services_key].delete_policy(
        partner_id(request), tenant_id(request), request.match_info["scope"],
        path_id(request, "ref", _REF))
    return web.Response(status=204)


async def list_recordings(request: web.Request) -> web.Response:
    q = request.query
    limit = page_limit(q)
    call_id = q.get("call_id")
    if call_id is not None and not ID.fullmatch(call_id):
        raise Problem(422, "call_id is not a call id", field="call_id")
    rows, more = await request.app[services_key].list(partner_id(request), tenant_id(request), call_id,
                                                      limit, newest_before(q))
    cursor = encode_cursor(rows[-1].started_at, rows[-1].id, Sort.CREATED_DESC) if more and rows else None
    return json_response(ListPage.of([_recording(r) for r in rows], cursor))


async def get_recording(request: web.Request) -> web.Response:
    row = await request.app[services_key].get(partner_id(request), tenant_id(request),
                                              path_id(request, "recording_id", UUID))
    return json_response(_recording(row))


async def get_audio(request: web.Request) -> web.Response:
    recording_id = path_id(request, "recording_id", UUID)
    data = await request.app[services_key].audio(partner_id(request), tenant_id(request), recording_id)
    return wav_download(data, f"recording-{recording_id}.wav")


async def get_retention(request: web.Request) -> web.Response:
    vm, rec = await request.app[services_key].retention(partner_id(request), tenant_id(request))
    return json_response(Retention(voicemail_days=vm, recording_days=rec))


async def put_retention(request: web.Request) -> web.Response:
    body = await read_body(request, Retention)
    vm, rec = await request.app[services_key].put_retention(partner_id(request), tenant_id(request),
                                                            body.voicemail_days, body.recording_days)
    return json_response(Retention(voicemail_days=vm, recording_days=rec))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(TENANT + "/recording-policies", list_policies)
    r.add_put(TENANT + "/recording-policies/{scope}/{ref}", put_policy)
    r.add_delete(TENANT + "/recording-policies/{scope}/{ref}", delete_policy)
    r.add_get(TENANT + "/recordings", list_recordings)
    r.add_get(TENANT + "/recordings/{recording_id}", get_recording)
    r.add_get(TENANT + "/recordings/{recording_id}/audio", get_audio)
    r.add_get(TENANT + "/media-retention", get_retention)
    r.add_put(TENANT + "/media-retention", put_retention)
