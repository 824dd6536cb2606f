"""Request ids without a syscall per request: unique within the process, and the shape the
API promises (``req_`` and at most 64 characters of [A-Za-z0-9._-])."""

from __future__ import annotations

import structlog
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from controlplane.http.middleware import REQUEST_ID_HEADER, _CALLER_ID, request_context


async def test_generated_request_ids_are_unique_and_well_formed() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    seen = set()
    for _ in range(1000):
        response = await request_context(make_mocked_request("GET", "/v1/tenants"), handler)
        rid = response.headers[REQUEST_ID_HEADER]
        assert rid.startswith("req_") and _CALLER_ID.match(rid), rid
        seen.add(rid)
    assert len(seen) == 1000


async def test_the_request_id_is_in_the_log_context_during_the_request_and_gone_after() -> None:
    seen: list[object] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(structlog.contextvars.get_contextvars().get("request_id"))
        raise ValueError("boom")  # the context is restored on the error path too

    structlog.contextvars.bind_contextvars(request_id="outer")
    try:
        response = await request_context(make_mocked_request("GET", "/v1/tenants"), handler)
        assert response.status == 500
        assert seen == [response.headers[REQUEST_ID_HEADER]]
        assert structlog.contextvars.get_contextvars().get("request_id") == "outer"
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
