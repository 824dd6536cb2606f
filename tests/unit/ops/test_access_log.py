"""The access log names the status the client got, also for a refusal raised as a Problem."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from controlplane.http.access_log import access_log
from controlplane.shared.problems import Problem


@web.middleware
async def render(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
    """Stands in for request_context: it renders a Problem outside the access log."""
    try:
        return await handler(request)
    except Problem as problem:
        return web.json_response({"detail": problem.detail}, status=problem.status)


async def refuse(request: web.Request) -> web.Response:
    raise Problem(422, "bad field", field="amount_micros")


async def fine(request: web.Request) -> web.Response:
    return web.json_response({}, status=201)


async def test_each_request_is_logged_with_the_status_answered() -> None:
    app = web.Application(middlewares=[render, access_log])
    app.router.add_post("/refuse", refuse)
    app.router.add_post("/fine", fine)
    async with TestClient(TestServer(app)) as client:
        with capture_logs() as logs:
            assert (await client.post("/refuse")).status == 422
            assert (await client.post("/fine")).status == 201
    statuses = [(e["route"], e["status"]) for e in logs if e["event"] == "http.request"]
    assert statuses == [("/refuse", 422), ("/fine", 201)]
