"""The payment-method routes over real HTTP, on PostgreSQL and localstripe."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from api_support import TOKEN, api_for as support_api_for
from localstripe_support import CARD_DECLINED, LocalStripe

from controlplane.apikeys.plugin import PLUGIN as APIKEYS
from controlplane.audit.plugin import PLUGIN as AUDIT
from controlplane.events.plugin import PLUGIN as EVENTS
from controlplane.payments import store
from controlplane.payments.plugin import PLUGIN as PAYMENTS
from controlplane.payments.provider import PaymentProvider
from controlplane.signals import PaymentMethodsChanged, Signals
from controlplane.tenants.plugin import PLUGIN as TENANTS

BASE = "/v1/account/payment-methods"
PartnerFactory = Callable[[], Awaitable[str]]


@dataclass
class Seen:
    """What a payment_methods_changed subscriber saw, and whether it ran inside a transaction."""

    changes: list[tuple[PaymentMethodsChanged, bool]] = field(default_factory=list)

    async def handler(self, conn: asyncpg.Connection, change: PaymentMethodsChanged) -> None:
        self.changes.append((change, conn.is_in_transaction()))

    def of(self, partner_id: str) -> list[str | None]:
        assert all(in_txn for _, in_txn in self.changes)
        return [c.default_method for c, _ in self.changes if c.partner_id == partner_id]


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]

    async def call(self, method: str, path: str, partner: str, json: Any = None,
                   token: str = TOKEN) -> tuple[int, Any]:
        resp = await self.client.request(method, path, json=json, headers={
            "Authorization": f"Bearer {token}", "X-Partner-Id": partner})
        text = await resp.text()
        return resp.status, (await resp.json(content_type=None) if text else None)


@asynccontextmanager
async def api_for(pool: asyncpg.Pool, provider: PaymentProvider | None, seen: Seen | None = None
                  ) -> AsyncIterator[Api]:
    signals = Signals()
    if seen is not None:
        signals.payment_methods_changed.connect(seen.handler)
    async with support_api_for(pool, plugins=[TENANTS, EVENTS, APIKEYS, AUDIT, PAYMENTS], signals=signals,
                               payments=provider) as support:
        yield Api(support.client)


@pytest.fixture(scope="module")
def seen() -> Seen:
    return Seen()


@pytest.fixture(scope="module")
async def api(pool: asyncpg.Pool, localstripe: LocalStripe, seen: Seen) -> AsyncIterator[Api]:
    async with api_for(pool, localstripe.provider(), seen) as client:
        yield client


async def test_attach_list_default_delete(api: Api, localstripe: LocalStripe, seen: Seen,
                                          make_partner: PartnerFactory, pool: asyncpg.Pool) -> None:
    pid = await make_partner()
    first, second = localstripe.card(), localstripe.card()
    status, body = await api.call("POST", BASE, pid, {"payment_method_id": first})
    assert status == 201, body
    assert (body["id"], body["brand"], body["last4"], body["is_default"]) == (first, "visa", "4242", True)
    status, again = await api.call("POST", BASE, pid, {"payment_method_id": first})
    assert (status, again) == (200, body)
    status, body = await api.call("POST", BASE, pid, {"payment_method_id": second})
    assert status == 201 and body["is_default"] is False

    status, page = await api.call("GET", BASE, pid)
    assert status == 200
    assert [(m["id"], m["is_default"]) for m in page["items"]] == [(first, True), (second, False)]
    assert (page["next_cursor"], page["has_more"]) == (None, False)

    status, body = await api.call("POST", f"{BASE}/{second}/default", pid)
    assert status == 200 and body["is_default"] is True
    card = await store.default_method(pool, pid)
    assert card is not None and card.method_id == second

    status, _ = await api.call("DELETE", f"{BASE}/{second}", pid)
    assert status == 204
    card = await store.default_method(pool, pid)
    assert card is not None and card.method_id == first  # the other card took over
    assert localstripe.client().v1.payment_methods.retrieve(second).customer is None  # detached at Stripe

    status, _ = await api.call("DELETE", f"{BASE}/{first}", pid)
    assert status == 204
    assert await store.default_method(pool, pid) is None
    status, page = await api.call("GET", BASE, pid)
    assert page["items"] == []
    # attach, attach (default unchanged), set default, delete (other takes over), delete the only one
    assert seen.of(pid) == [first, first, second, first, None]
    customers = await pool.fetch("SELECT customer_id FROM payment_customers WHERE partner_id = $1", pid)
    assert len(customers) == 1
    events = await pool.fetchval("SELECT count(*) FROM events WHERE partner_id = $1"
                                 " AND type = 'payment_method.attached'", pid)
    assert events == 2


async def test_deleting_the_only_card_tells_subscribers_there_is_no_default(
        api: Api, localstripe: LocalStripe, seen: Seen, make_partner: PartnerFactory) -> None:
    pid = await make_partner()
    only = localstripe.card()
    assert (await api.call("POST", BASE, pid, {"payment_method_id": only}))[0] == 201
    assert (await api.call("DELETE", f"{BASE}/{only}", pid))[0] == 204
    assert seen.of(pid) == [only, None]


async def test_a_declined_card_is_402_and_nothing_is_saved(api: Api, localstripe: LocalStripe,
                                                           make_partner: PartnerFactory) -> None:
    pid = await make_partner()
    status, body = await api.call("POST", BASE, pid, {"payment_method_id": localstripe.card(CARD_DECLINED)})
    assert (status, body["code"]) == (402, "card_declined"), body
    assert (await api.call("GET", BASE, pid))[1]["items"] == []


@pytest.mark.parametrize("payload, field", [
    ({"payment_method_id": "4242424242424242"}, "payment_method_id"),
    ({"payment_method_id": "card_123"}, "payment_method_id"),
    ({"payment_method_id": "pm_"}, "payment_method_id"),
    ({"payment_method_id": "pm_abc; DROP"}, "payment_method_id"),
    ({"payment_method_id": 42}, "payment_method_id"),
    ({}, "payment_method_id"),
    ({"payment_method_id": "pm_abc", "card": {"number": "4242424242424242"}}, "card"),
    ({"payment_method_id": "pm_NoSuchMethodAtStripe"}, "payment_method_id"),
])
async def test_bad_ids_are_422_naming_the_field(api: Api, make_partner: PartnerFactory, payload: dict[str, Any],
                                                field: str) -> None:
    pid = await make_partner()
    status, body = await api.call("POST", BASE, pid, payload)
    assert status == 422, body
    assert field in [e["field"] for e in body["errors"]]
    assert (await api.call("GET", BASE, pid))[1]["items"] == []


async def test_path_ids_are_checked_and_scoped_to_the_partner(api: Api, localstripe: LocalStripe,
                                                              make_partner: PartnerFactory) -> None:
    owner, other = await make_partner(), await make_partner()
    method = localstripe.card()
    assert (await api.call("POST", BASE, owner, {"payment_method_id": method}))[0] == 201
    status, body = await api.call("DELETE", f"{BASE}/4242424242424242", owner)
    assert (status, body["field"]) == (422, "method_id")
    assert (await api.call("DELETE", f"{BASE}/{method}", other))[0] == 404
    assert (await api.call("POST", f"{BASE}/{method}/default", other))[0] == 404
    status, body = await api.call("POST", BASE, other, {"payment_method_id": method})
    assert (status, body["code"]) == (409, "conflict")
    assert [m["id"] for m in (await api.call("GET", BASE, owner))[1]["items"]] == [method]


async def test_api_keys_need_the_billing_scopes(api: Api, localstripe: LocalStripe,
                                                make_partner: PartnerFactory) -> None:
    pid = await make_partner()
    status, key = await api.call("POST", "/v1/api-keys", pid, {"name": "ro", "scopes": ["billing:read"]})
    assert status == 201, key
    secret = key["secrets"]["key"]
    assert (await api.call("GET", BASE, pid, token=secret))[0] == 200
    status, body = await api.call("POST", BASE, pid, {"payment_method_id": localstripe.card()}, token=secret)
    assert status == 403, body


async def test_payments_disabled_is_a_clear_problem_on_every_route(pool: asyncpg.Pool,
                                                                  make_partner: PartnerFactory) -> None:
    pid = await make_partner()
    async with api_for(pool, None) as disabled:
        for method, path, body in (("POST", BASE, {"payment_method_id": "pm_abc"}), ("GET", BASE, None),
                                   ("POST", f"{BASE}/pm_abc/default", None), ("DELETE", f"{BASE}/pm_abc", None)):
            status, problem = await disabled.call(method, path, pid, body)
            assert (status, problem["code"]) == (409, "payments_disabled"), (method, path, problem)


async def test_simultaneous_first_cards_make_one_customer_and_one_default(
        api: Api, localstripe: LocalStripe, make_partner: PartnerFactory, pool: asyncpg.Pool) -> None:
    pid = await make_partner()
    cards = [localstripe.card() for _ in range(4)]
    replies = await asyncio.gather(*(api.call("POST", BASE, pid, {"payment_method_id": c}) for c in cards))
    assert [status for status, _ in replies] == [201] * 4, replies
    assert sum(body["is_default"] for _, body in replies) == 1
    assert await pool.fetchval("SELECT count(*) FROM payment_customers WHERE partner_id = $1", pid) == 1
    customers = {localstripe.client().v1.payment_methods.retrieve(c).customer for c in cards}
    assert customers == {await store.customer_id(pool, pid)}
