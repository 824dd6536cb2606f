"""The acting user in the HTTP guard, without a database: validated, cached, its role enforced
before the handler runs, and the refused attempt handed to the auditor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from controlplane.config import Config
from controlplane.http.app import make_app
from controlplane.http.middleware import acting_users, mutation_auditor
from controlplane.plugins import Context
from controlplane.shared.actor import Actor, TeamRole
from controlplane.team.acting import ActingUserCache
from controlplane.tenants.plugin import PLUGIN as TENANTS

READER, ADMIN = "usr_aaaaaaaaaaaaaaaa", "usr_bbbbbbbbbbbbbbbb"


@dataclass
class Users:
    roles: dict[tuple[str, str], TeamRole]

    async def role(self, partner_id: str, user_id: str) -> TeamRole | None:
        return self.roles.get((partner_id, user_id))


@dataclass
class Auditor:
    refusals: list[tuple[str, str | None, str | None, str | None]] = field(default_factory=list)

    async def unaudited(self, request: web.Request, action: str, actor: Actor) -> None:
        raise AssertionError("no handler may have run")

    async def refused(self, request: web.Request, action: str, actor: Actor, code: str | None) -> None:
        self.refusals.append((action, actor.partner_id, actor.user_id, code))


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient, Auditor]]:
    # Routes only (no pool): a handler that ran would fail for want of its services.
    app = make_app(service_token_value="t", probes=[], plugins=[TENANTS], context=Context(Config(), None))
    app[acting_users] = Users({("p1", READER): TeamRole.PARTNER_USER, ("p1", ADMIN): TeamRole.PARTNER_ADMIN})
    auditor = Auditor()
    app[mutation_auditor] = auditor
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    try:
        yield test_client, auditor
    finally:
        await test_client.close()


def _headers(user: str, partner: str = "p1") -> dict[str, str]:
    return {"Authorization": "Bearer t", "X-Partner-Id": partner, "X-Acting-User": user}


async def test_a_read_only_users_mutation_is_refused_before_its_handler(client: tuple[TestClient, Auditor]) -> None:
    http, auditor = client
    r = await http.post("/v1/tenants", json={"name": "x", "billing_email": "a@b.co"}, headers=_headers(READER))
    body = await r.json(content_type=None)
    assert r.status == 403 and body["code"] == "read_only_role"
    r = await http.delete("/v1/tenants/ten_1", headers=_headers(READER))
    assert r.status == 403
    assert auditor.refusals == [("createTenant", "p1", READER, "read_only_role"),
                                ("deleteTenant", "p1", READER, "read_only_role")]


async def test_unknown_users_are_refused_and_not_audited(client: tuple[TestClient, Auditor]) -> None:
    http, auditor = client
    for user, partner in ((READER, "p2"), ("usr_cccccccccccccccc", "p1")):
        r = await http.post("/v1/tenants", json={}, headers=_headers(user, partner))
        assert r.status == 403 and (await r.json(content_type=None))["code"] == "unknown_acting_user"
    assert auditor.refusals == []


@dataclass
class Pool:
    """What ActingUserCache asks of a pool: one fetchval per lookup."""

    role: str | None
    calls: int = 0

    async def fetchval(self, query: str, *args: Any) -> str | None:
        self.calls += 1
        return self.role

    async def execute(self, query: str, *args: Any) -> None:
        return None


async def test_the_cache_asks_once_per_ttl_and_forgets_on_change() -> None:
    now = [0.0]
    pool = Pool("PARTNER_ADMIN")
    cache = ActingUserCache(pool, ttl=10.0, clock=lambda: now[0])  # type: ignore[arg-type]
    assert await cache.role("p1", ADMIN) is TeamRole.PARTNER_ADMIN
    assert await cache.role("p1", ADMIN) is TeamRole.PARTNER_ADMIN
    assert pool.calls == 1
    pool.role = None  # removed elsewhere: seen when the entry expires...
    now[0] = 9.9
    assert await cache.role("p1", ADMIN) is TeamRole.PARTNER_ADMIN
    now[0] = 10.0
    assert await cache.role("p1", ADMIN) is None and pool.calls == 2
    assert await cache.role("p1", ADMIN) is None and pool.calls == 2  # negative answers are cached too
    pool.role = "PARTNER_USER"
    cache.forget("p1", ADMIN)  # ...or at once when removed through this process
    assert await cache.role("p1", ADMIN) is TeamRole.PARTNER_USER and pool.calls == 3
