"""Inviting, re-inviting, removing and accepting partner users; the setup checklist.

Every change is audited in its transaction (``audit.record``: the acting user comes from
the request's actor); the invitation email is enqueued in the same transaction
(``controlplane.mail.store.enqueue``), so a user is invited iff their mail is queued.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
import structlog

from controlplane import audit
from controlplane.db.connection import Connection
from controlplane.shared.actor import TeamRole
from controlplane.shared.pagination import PageRequest, next_page
from controlplane.shared.problems import Problem
from controlplane.team import checklist as checklist_core
from controlplane.team import invitation, store
from controlplane.team.models import Checklist, TeamUser, TeamUserCreate, UserStatus

TEMPLATE = "invitation"
log = structlog.get_logger(__name__)


class Enqueue(Protocol):
    """``controlplane.mail.store.enqueue``'s shape (contracts.md, M)."""

    async def __call__(self, conn: Any, *, partner_id: str | None, to: str, template: str,
                       values: Mapping[str, object], reference: str, attachments: Sequence[Any] = ()) -> bool: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _not_found(user_id: str) -> Problem:
    return Problem(404, f"no user {user_id} for this partner", code="not_found")


@dataclass
class TeamServices:
    pool: asyncpg.Pool
    enqueue: Enqueue
    # The portal's accept page; ``{token}`` is replaced by the invitation token.
    invitation_url: str
    clock: Callable[[], datetime] = _now
    # Called after a user's status changes, so this process stops trusting its cached role.
    on_change: Callable[[str, str], None] = field(default=lambda partner_id, user_id: None)

    async def list_users(self, partner_id: str, page: PageRequest,
                         status: str | None) -> tuple[list[TeamUser], str | None]:
        if status is not None and status not in UserStatus.__members__:
            raise Problem(422, f"status must be one of {', '.join(UserStatus)}", field="status")
        async with self.pool.acquire() as conn:
            rows = await store.list_page(conn, partner_id, page, UserStatus(status) if status else None,
                                         self.clock())
        return next_page(rows, page)

    async def get(self, partner_id: str, user_id: str) -> TeamUser:
        async with self.pool.acquire() as conn:
            return await self._get(conn, partner_id, user_id)

    async def invite(self, partner_id: str, body: TeamUserCreate, acting_user: str | None) -> TeamUser:
        email, name = invitation.invitee(body.email, body.name)
        if body.activate and acting_user is not None:
            raise Problem(422, "activate: only the portal acting as itself (no X-Acting-User) creates an active"
                          " user; a user invites", field="activate")
        now, user_id = self.clock(), f"usr_{secrets.token_hex(8)}"
        token = None if body.activate else invitation.new_token()
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.partner_exists(conn, partner_id):
                raise Problem(404, f"no partner {partner_id}", code="not_found")
            try:
                async with conn.transaction():
                    await store.insert(
                        conn, user_id=user_id, partner_id=partner_id, email=email, name=name, role=body.role,
                        status=UserStatus.ACTIVE if token is None else UserStatus.INVITED,
                        token_hash=None if token is None else invitation.token_hash(token),
                        invited_by=acting_user, now=now,
                        expires_at=None if token is None else invitation.expires_at(now))
            except asyncpg.UniqueViolationError:
                raise Problem(409, f"email: {email} is already a user of this partner (invited or active)",
                              field="email", code="already_a_user") from None
            user = await self._get(conn, partner_id, user_id)
            await audit.record(conn, action="invite" if token else "create", resource="team_user",
                               resource_id=user_id, partner_id=partner_id, after=user)
            if token is not None:
                await self._mail(conn, user, token, acting_user)
        if token is None:
            self.on_change(partner_id, user_id)
        return user

    async def resend(self, partner_id: str, user_id: str, acting_user: str | None) -> TeamUser:
        """A new token and a new 7-day expiry; the earlier link stops working."""
        now, token = self.clock(), invitation.new_token()
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._get(conn, partner_id, user_id, lock=True)
            if current.status is not UserStatus.INVITED:
                raise Problem(409, f"user {user_id} is {current.status.value}: only a pending invitation is resent",
                              code="not_invited")
            await store.reinvite(conn, user_id, invitation.token_hash(token), now, invitation.expires_at(now))
            user = await self._get(conn, partner_id, user_id)
            await audit.record(conn, action="resend_invitation", resource="team_user", resource_id=user_id,
                               partner_id=partner_id, before=current, after=user)
            await self._mail(conn, user, token, acting_user)
        return user

    async def remove(self, partner_id: str, user_id: str) -> None:
        """The user can no longer act; their audit entries stay (they name them by id). Idempotent."""
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._get(conn, partner_id, user_id, lock=True)
            if current.status is UserStatus.REMOVED:
                return
            if (current.status is UserStatus.ACTIVE and current.role is TeamRole.PARTNER_ADMIN
                    and await store.active_admins(conn, partner_id) <= 1):
                raise Problem(409, f"user {user_id} is the partner's last active {TeamRole.PARTNER_ADMIN.value};"
                              " make another admin first", code="last_admin")
            await store.remove(conn, user_id, self.clock())
            await audit.record(conn, action="remove", resource="team_user", resource_id=user_id,
                               partner_id=partner_id, before=current,
                               after=await self._get(conn, partner_id, user_id))
        self.on_change(partner_id, user_id)

    async def accept(self, token: str) -> TeamUser:
        """The invitee set a password on the portal: the user becomes ACTIVE."""
        now = self.clock()
        unknown = Problem(404, "token: no such invitation (the link is wrong, or a newer invitation replaced it)",
                          field="token", code="invitation_unknown")
        if not invitation.plausible_token(token):
            raise unknown
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.by_token(conn, invitation.token_hash(token))
            if row is None:
                raise unknown
            current = store.user_from(row, now)
            if current.status is UserStatus.ACTIVE:
                raise Problem(409, "token: this invitation was already accepted; sign in instead", field="token",
                              code="invitation_used")
            if current.status is UserStatus.REMOVED:
                raise Problem(409, "token: this user was removed; the invitation no longer works", field="token",
                              code="invitation_revoked")
            if invitation.expired(current.invitation_expires_at, now):
                raise Problem(409, f"token: this invitation expired at {current.invitation_expires_at:%Y-%m-%d %H:%M}"
                              " UTC; ask for a new one (resend)", field="token", code="invitation_expired")
            await store.accept(conn, current.id, now)
            user = await self._get(conn, current.partner_id, current.id)
            await audit.record(conn, action="accept_invitation", resource="team_user", resource_id=current.id,
                               partner_id=current.partner_id, before=current, after=user)
        self.on_change(user.partner_id, user.id)
        return user

    async def checklist(self, partner_id: str) -> Checklist:
        async with self.pool.acquire() as conn:
            if not await store.partner_exists(conn, partner_id):
                raise Problem(404, f"no partner {partner_id}", code="not_found")
            return checklist_core.checklist(await store.facts(conn, partner_id))

    async def _mail(self, conn: Connection, user: TeamUser, token: str, acting_user: str | None) -> None:
        inviter = None
        if acting_user is not None:
            row = await store.get(conn, user.partner_id, acting_user)
            inviter = None if row is None else row["name"]
        assert user.invitation_expires_at is not None
        await self.enqueue(
            conn, partner_id=user.partner_id, to=user.email, template=TEMPLATE,
            values={"name": user.name, "email": user.email, "role": user.role.value,
                    "role_title": "Partner Admin" if user.role is TeamRole.PARTNER_ADMIN else "Partner User",
                    "inviter": inviter, "accept_url": self.invitation_url.replace("{token}", token),
                    "expires_at": user.invitation_expires_at},
            # One mail per invitation sent: a resend is a new token, so a new reference.
            reference=f"invitation:{user.partner_id}:{user.id}:{invitation.token_hash(token).hex()[:16]}")
        log.info("team.invitation_queued", partner_id=user.partner_id, user_id=user.id)

    async def _get(self, conn: store.Conn, partner_id: str, user_id: str, *, lock: bool = False) -> TeamUser:
        row = await store.get(conn, partner_id, user_id, lock=lock)
        if row is None:
            raise _not_found(user_id)
        return store.user_from(row, self.clock())
