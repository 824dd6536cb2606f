"""``/v1/tenants/{tenant_id}/extensions/{extension_id}/voicemail`` and
``/v1/tenants/{tenant_id}/voicemail/messages`` (documented in openapi.yaml)."""

from __future__ import annotations

from aiohttp import web

from controlplane.http.body import json_response, read_body
from controlplane.http.caller import partner_id
from controlplane.http.pagination import newest_before, page_limit
from controlplane.http.paths import ID, UUID, path_id, tenant_id, wav_download
from controlplane.http.problems import Problem
from controlplane.shared.audio import AudioRejected
from controlplane.shared.pagination import ListPage, Sort, encode_cursor
from controlplane.voicemail.models import VoicemailUpdate
from controlplane.voicemail.services import VoicemailServices

services_key = web.AppKey("voicemail_services", VoicemailServices)
BOX = "/v1/tenants/{tenant_id}/extensions/{extension_id}/voicemail"
MESSAGES = "/v1/tenants/{tenant_id}/voicemail/messages"
# What an upload may declare (the bytes are checked whatever it says).
AUDIO_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})


async def read_audio(request: web.Request, max_bytes: int, field: str) -> bytes:
    """The raw body, read up to ``max_bytes`` + 1 (the app-wide body limit is for JSON):
    a 422 naming ``field`` for a declared type that is not WAV or a body over the limit."""
    if request.content_type not in AUDIO_TYPES:
        raise AudioRejected("unsupported_type", f"Content-Type {request.content_type} is not supported:"
                            " send audio/wav", field=field)
    data = await request.content.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise AudioRejected("too_large", f"the file is over {max_bytes} bytes", field=field)
    return data


async def get_settings(request: web.Request) -> web.Response:
    return json_response(await request.app[services_key].settings(
        partner_id(request), tenant_id(request), path_id(request, "extension_id")))


async def put_settings(request: web.Request) -> web.Response:
    body = await read_body(request, VoicemailUpdate)
    return json_response(await request.app[services_key].update(
        partner_id(request), tenant_id(request), path_id(request, "extension_id"), body))


async def put_greeting(request: web.Request) -> web.Response:
    services = request.app[services_key]
    partner, tenant, ext = partner_id(request), tenant_id(request), path_id(request, "extension_id")
    await services.settings(partner, tenant, ext)  # 404 before reading a body for nobody
    data = await read_audio(request, services.config.max_upload_bytes, "greeting")
    return json_response(await services.put_greeting(partner, tenant, ext, data))


async def delete_greeting(request: web.Request) -> web.Response:
    await request.app[services_key].delete_greeting(
        partner_id(request), tenant_id(request), path_id(request, "extension_id"))
    return web.Response(status=204)


async def list_messages(request: web.Request) -> web.Response:
    q = request.query
    limit = page_limit(q)
    extension = q.get("extension_id")
    if extension is not None and not ID.fullmatch(extension):
        raise Problem(422, "extension_id is not an extension id", field="extension_id")
    items, more = await request.app[services_key].list_messages(
        partner_id(request), tenant_id(request), extension, limit, newest_before(q))
    next_cursor = encode_cursor(items[-1].received_at, items[-1].id, Sort.CREATED_DESC) if more and items else None
    return json_response(ListPage.of(items, next_cursor))


async def get_message(request: web.Request) -> web.Response:
    return json_response(await request.app[services_key].message(
        partner_id(request), tenant_id(request), path_id(request, "message_id", UUID)))


async def get_audio(request: web.Request) -> web.Response:
    message_id = path_id(request, "message_id", UUID)
    data = await request.app[services_key].audio(partner_id(request), tenant_id(request), message_id)
    return wav_download(data, f"voicemail-{message_id}.wav")


async def delete_message(request: web.Request) -> web.Response:
    await request.app[services_key].delete_message(
        partner_id(request), tenant_id(request), path_id(request, "message_id", UUID))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(BOX, get_settings)
    r.add_put(BOX, put_settings)
    r.add_put(BOX + "/greeting", put_greeting)
    r.add_delete(BOX + "/greeting", delete_greeting)
    r.add_get(MESSAGES, list_messages)
    r.add_get(MESSAGES + "/{message_id}", get_message)
    r.add_get(MESSAGES + "/{message_id}/audio", get_audio)
    r.add_delete(MESSAGES + "/{message_id}", delete_message)
