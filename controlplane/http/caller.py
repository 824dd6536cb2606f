"""Who is calling, and for which partner.

The portal's service token may act for any partner: ``X-Partner-Id`` names it and
``X-Acting-User`` (optional) the portal user who acts: an ACTIVE user of that partner
(controlplane/team), whose role the guard enforces (a Partner User is read-only) and whom
every audit entry names. Without it the portal acts as itself (sign-up, jobs). An API key
may not send it (a machine credential acts as itself); with the platform token it names the
operator, as sent (operators are not partner users; docs/team.md). A partner API key
acts for its own partner only (the header, if sent, must name that partner), within
its scopes and, when it has one, its tenant scope.

The platform token is the operator's: it alone reaches the operations marked
``platform`` (inventory, DIDs granted outside a purchase, carrier-side port
transitions, wallet credits), and nothing else. It names the partner an operation
concerns with the same ``X-Partner-Id`` header. Neither the service token nor a key
can become it: the kind comes from which secret matched, never from a header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web

from controlplane.http.problems import Problem
from controlplane.shared.actor import TeamRole

PARTNER_HEADER = "X-Partner-Id"
USER_HEADER = "X-Acting-User"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class CallerKind(StrEnum):
    SERVICE = "service"
    API_KEY = "api_key"
    PLATFORM = "platform"


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    partner_id: str | None
    user_id: str | None = None
    key_id: str | None = None
    # API keys only: granted scopes ("tenants:read", ...); None means unrestricted (the portal).
    scopes: frozenset[str] | None = None
    # API keys only: the tenants the key may touch; None means every tenant of the partner.
    tenant_ids: frozenset[str] | None = None
    rate_limit: int | None = None
    # The acting user's role, once the guard validated ``user_id`` (service token only).
    role: TeamRole | None = None

    def allows(self, scope: str) -> bool:
        """``x:write`` implies ``x:read``: a key that may change a thing may look at it."""
        if self.scopes is None:
            return True
        resource, _, level = scope.partition(":")
        return scope in self.scopes or (level == "read" and f"{resource}:write" in self.scopes)


caller_key = web.RequestKey("caller", Caller)


def token_caller(request: web.Request, kind: CallerKind) -> Caller:
    """The service token's or the platform token's caller, acting for the partner the header names."""
    partner = request.headers.get(PARTNER_HEADER)
    user = request.headers.get(USER_HEADER)
    for header, value in ((PARTNER_HEADER, partner), (USER_HEADER, user)):
        if value is not None and not _ID.match(value):
            raise Problem(422, f"{header} must be 1-64 letters, digits, _ or -", field=header)
    return Caller(kind, partner, user_id=user)


def partner_id(request: web.Request) -> str:
    """The partner the request acts for; a 422 naming the header when absent."""
    partner = request[caller_key].partner_id
    if partner is None:
        raise Problem(422, f"the {PARTNER_HEADER} header names the partner to act for",
                      field=PARTNER_HEADER)
    return partner


def tenant_scope(request: web.Request) -> frozenset[str] | None:
    """The tenants this caller may see; None when it may see all of the partner's."""
    return request[caller_key].tenant_ids


def require_tenant(request: web.Request, tenant_id: str | None) -> None:
    """A 404 (not a 403: existence is not disclosed) for a tenant outside the key's scope."""
    scope = tenant_scope(request)
    if scope is not None and tenant_id is not None and tenant_id not in scope:
        raise Problem(404, f"no tenant {tenant_id} for this partner", code="not_found")
