"""Who is acting in the current task: bound by the HTTP guard for a request, read by the
audit recorder. Here, not in the audit capability, so the HTTP layer imports no plugin."""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass
class Actor:
    """Who is acting; ``recorded`` counts entries written, so the middleware knows
    whether a mutation was audited by its service or needs its generic entry."""

    actor_type: str  # service | api_key | platform | system
    partner_id: str | None = None
    api_key_id: str | None = None
    user_id: str | None = None
    request_id: str | None = None
    recorded: int = 0


SYSTEM = Actor("system")
_actor: ContextVar[Actor | None] = ContextVar("audit_actor", default=None)


def bind_actor(actor: Actor) -> Token[Actor | None]:
    return _actor.set(actor)


def reset_actor(token: Token[Actor | None]) -> None:
    _actor.reset(token)


def current_actor() -> Actor:
    return _actor.get() or SYSTEM
