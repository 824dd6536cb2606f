"""Invitations, pure: the token, what it is stored as, when it expires, and the invite's inputs.

The token carries 256 random bits and is stored as its SHA-256 only, so a leaked table lets
no one in; a fast hash is enough for that much entropy (the same reasoning as API keys).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from controlplane.brand.validation import email_problem
from controlplane.shared.problems import FieldError, Problem

# Seed 003 "Inviting a team member": "Invites expire in 7 days."
VALID_FOR = timedelta(days=7)
TOKEN_PREFIX = "inv_"
MAX_TOKEN = 128


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def expires_at(sent_at: datetime) -> datetime:
    return sent_at + VALID_FOR


def expired(expires: datetime | None, now: datetime) -> bool:
    return expires is not None and now >= expires


def plausible_token(token: str) -> bool:
    """Worth a lookup: the shape new_token makes (anything else is unknown without asking)."""
    return token.startswith(TOKEN_PREFIX) and len(token) <= MAX_TOKEN


def invitee(email: str, name: str) -> tuple[str, str]:
    """The invite's address and display name, checked; one 422 naming every field at fault."""
    errors: list[FieldError] = []
    # The mail outbox's own rule, so every address accepted here can be mailed.
    email = email.strip()
    wrong = email_problem(email)
    if wrong is not None:
        errors.append(FieldError("email", f"email: {wrong}"))
    name = " ".join(name.split())
    if not 1 <= len(name) <= 100:
        errors.append(FieldError("name", "name: 1 to 100 characters"))
    if errors:
        raise Problem(422, "; ".join(e.message for e in errors), errors=errors)
    return email, name
