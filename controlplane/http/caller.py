"""Who is calling, and for which partner.

The portal's service token may act for any partner: ``X-Partner-Id`` names it and
``X-Acting-User`` (optional) the portal user, for the audit log. Partner API keys
(a later capability) resolve to their own partner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web

from controlplane.http.problems import Problem

PARTNER_HEADER = "X-Partner-Id"
USER_HEADER = "X-Acting-User"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class CallerKind(StrEnum):
    SERVICE = "service"
    API_KEY = "api_key"


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    partner_id: str | None
    user_id: str | None = None
    key_id: str | None = None


caller_key = web.RequestKey("caller", Caller)


def service_caller(request: web.Request) -> Caller:
    partner = request.headers.get(PARTNER_HEADER)
    user = request.headers.get(USER_HEADER)
    for header, value in ((PARTNER_HEADER, partner), (USER_HEADER, user)):
        if value is not None and not _ID.match(value):
            raise Problem(422, f"{header} must be 1-64 letters, digits, _ or -", field=header)
    return Caller(CallerKind.SERVICE, partner, user_id=user)


def partner_id(request: web.Request) -> str:
    """The partner the request acts for; a 422 naming the header when absent."""
    partner = request[caller_key].partner_id
    if partner is None:
        raise Problem(422, f"the {PARTNER_HEADER} header names the partner to act for",
                      field=PARTNER_HEADER)
    return partner
