"""THE fixture helper for a funded ACTIVE partner, made through the ledger over the RPC.

The partner is created by the portal (TRIAL), activated by the platform's comp activation
(``POST /v1/partners/{id}/activation``: no card) and funded with one manual adjustment
(``POST /v1/wallet/adjustments``): nothing is inserted into wallet or partner tables by hand,
so the balance is the sum of the entries like any partner's.

Works against an in-process test app (``aiohttp.test_utils.TestClient.request``) or a running
daemon (``session_requester(session, base_url)``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

# (method, path, json=..., headers=...) -> the response; TestClient.request has this shape.
Requester = Callable[..., Awaitable[aiohttp.ClientResponse]]


def session_requester(session: aiohttp.ClientSession, base_url: str) -> Requester:
    def request(method: str, path: str, **kwargs: Any) -> Awaitable[aiohttp.ClientResponse]:
        return session.request(method, base_url.rstrip("/") + path, **kwargs)
    return request


@dataclass(frozen=True)
class FundedPartner:
    partner_id: str
    balance_micros: int


async def _json(response: aiohttp.ClientResponse, *expected: int) -> Any:
    body = await response.json(content_type=None)
    assert response.status in expected, (response.status, body)
    return body


async def funded_active_partner(request: Requester, *, service_token: str, platform_token: str,
                                micros: int, tier: str = "BUSINESS", name: str = "Funded partner") -> FundedPartner:
    """A new partner of ``tier``, ACTIVE (comp activation) with ``micros`` in its wallet."""
    created = await _json(await request("POST", "/v1/partners", json={"name": name, "tier": tier},
                                        headers={"Authorization": f"Bearer {service_token}"}), 201)
    partner_id = str(created["id"])
    return await activate_and_fund(request, partner_id, platform_token=platform_token, micros=micros)


async def activate_and_fund(request: Requester, partner_id: str, *, platform_token: str, micros: int
                            ) -> FundedPartner:
    platform = {"Authorization": f"Bearer {platform_token}"}
    await _json(await request("POST", f"/v1/partners/{partner_id}/activation",
                              json={"reason": "test fixture: funded ACTIVE partner"}, headers=platform), 201)
    balance = 0
    if micros:
        posted = await _json(await request(
            "POST", "/v1/wallet/adjustments", headers=platform,
            json={"partner_id": partner_id, "amount_micros": micros, "reason": "test fixture funding",
                  "reference": f"fixture-{secrets.token_hex(8)}"}), 201)
        balance = int(posted["balance_micros"])
    return FundedPartner(partner_id, balance)
