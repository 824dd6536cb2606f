"""``/v1/team/...`` and ``/v1/account/checklist``: the partner's users, for the portal only."""

from __future__ import annotations

import re

from aiohttp import web

from controlplane.http.body import json_response, read_body
from controlplane.http.caller import caller_key, partner_id
from controlplane.http.pagination import page_request
from controlplane.http.problems import Problem
from controlplane.shared.pagination import ListPage
from controlplane.team.models import InvitationAccept, TeamUserCreate
from controlplane.team.services import TeamServices

services_key = web.AppKey("team_services", TeamServices)
BASE = "/v1/team/users"
_ID = re.compile(r"usr_[0-9a-f]{16}")


def _user_id(request: web.Request) -> str:
    user_id = request.match_info["user_id"]
    if not _ID.fullmatch(user_id):
        raise Problem(404, f"no user {user_id} for this partner", code="not_found")
    return user_id


async def invite(request: web.Request) -> web.Response:
    body = await read_body(request, TeamUserCreate)
    user = await request.app[services_key].invite(partner_id(request), body, request[caller_key].user_id)
    return json_response(user, 201)


async def list_users(request: web.Request) -> web.Response:
    page = page_request(request.query)
    items, cursor = await request.app[services_key].list_users(partner_id(request), page,
                                                               request.query.get("status"))
    return json_response(ListPage.of(items, cursor))


async def get(request: web.Request) -> web.Response:
    return json_response(await request.app[services_key].get(partner_id(request), _user_id(request)))


async def resend(request: web.Request) -> web.Response:
    user = await request.app[services_key].resend(partner_id(request), _user_id(request),
                                                  request[caller_key].user_id)
    return json_response(user)


async def remove(request: web.Request) -> web.Response:
    await request.app[services_key].remove(partner_id(request), _user_id(request))
    return web.Response(status=204)


async def accept(request: web.Request) -> web.Response:
    body = await read_body(request, InvitationAccept)
    return json_response(await request.app[services_key].accept(body.token))


async def checklist(request: web.Request) -> web.Response:
    return json_response(await request.app[services_key].checklist(partner_id(request)))


def add_routes(app: web.Application) -> None:
    one = BASE + "/{user_id}"
    app.router.add_post(BASE, invite)
    app.router.add_get(BASE, list_users)
    app.router.add_get(one, get)
    app.router.add_delete(one, remove)
    app.router.add_post(one + "/invitation", resend)
    app.router.add_post("/v1/team/invitations/accept", accept)
    app.router.add_get("/v1/account/checklist", checklist)
