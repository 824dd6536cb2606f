"""Partner users as stored and as shown; request bodies; the setup checklist."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from controlplane.shared.actor import TeamRole

__all__ = ["Checklist", "ChecklistStep", "InvitationAccept", "TeamRole", "TeamUser", "TeamUserCreate",
           "UserStatus"]


class UserStatus(StrEnum):
    INVITED = "INVITED"
    ACTIVE = "ACTIVE"
    REMOVED = "REMOVED"


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class TeamUserCreate(_Body):
    email: str
    name: str
    role: TeamRole
    # True: the user is ACTIVE at once and no invitation is sent: the partner's owner, whose
    # address the portal verified at sign-up. Only the portal acting as itself (no X-Acting-User).
    activate: bool = False


class InvitationAccept(_Body):
    token: str


class TeamUser(msgspec.Struct, kw_only=True):
    id: str
    partner_id: str
    email: str
    name: str
    role: TeamRole
    status: UserStatus
    # Seed 003's "Email Verified" badge: the user proved the address by accepting the invitation.
    email_verified: bool
    invited_at: datetime | None
    invitation_expires_at: datetime | None
    # INVITED and past invitation_expires_at: resend to let them in.
    invitation_expired: bool
    accepted_at: datetime | None
    removed_at: datetime | None
    # The last request the portal made as this user (at most a minute stale): "Last Login".
    last_seen_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ChecklistStep(msgspec.Struct, kw_only=True):
    id: str
    title: str
    done: bool


class Checklist(msgspec.Struct, kw_only=True):
    steps: list[ChecklistStep]
    done_count: int
    total: int
    complete: bool
