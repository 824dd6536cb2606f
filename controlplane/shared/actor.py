"""Who is acting in the current task: bound by the HTTP guard for a request, read by the
audit recorder. Here, not in the audit capability, so the HTTP layer imports no plugin."""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass
from enum import StrEnum


class TeamRole(StrEnum):
    """A partner user's role (seed 003 "Account Settings & Team")."""

    PARTNER_ADMIN = "PARTNER_ADMIN"  # everything the partner may do
    PARTNER_USER = "PARTNER_USER"  # read-only: any non-GET request is refused before its handler

    @property
    def read_only(self) -> bool:
        return self is TeamRole.PARTNER_USER


@dataclass
class Actor:
    """Who is acting; ``recorded`` counts entries written, so the middleware knows
    whether a mutation was audited by its service or needs its generic entry.

    ``user_id`` is the acting partner user (``X-Acting-User``, validated by the HTTP guard
    against the partner's ACTIVE users; audit column ``acting_user_id``) and ``role`` theirs."""

    actor_type: str  # service | api_key | platform | system
    partner_id: str | None = None
    api_key_id: str | None = None
    user_id: str | None = None
    request_id: str | None = None
    recorded: int = 0
    role: TeamRole | None = None


SYSTEM = Actor("system")
_actor: ContextVar[Actor | None] = ContextVar("audit_actor", default=None)


def bind_actor(actor: Actor) -> Token[Actor | None]:
    return _actor.set(actor)


def reset_actor(token: Token[Actor | None]) -> None:
    _actor.reset(token)


def current_actor() -> Actor:
    return _actor.get() or SYSTEM
