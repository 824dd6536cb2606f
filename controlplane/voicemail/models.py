"""Voicemail as the API takes and shows it."""

from __future__ import annotations

import re
from datetime import datetime

import msgspec
from msgspec import UNSET, UnsetType

__all__ = ["UNSET", "VoicemailMessage", "VoicemailSettings", "VoicemailUpdate", "check_email"]

_EMAIL = re.compile(r"[^@\s<>\"',;()\[\]\\]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")


class VoicemailUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Partial: a field left out keeps its value; ``email: null`` stops the emails.
    The box itself is on while the extension's ``voicemail_enabled`` is true."""

    pin: str | UnsetType = UNSET
    email: str | None | UnsetType = UNSET
    attach_audio: bool | UnsetType = UNSET


class VoicemailSettings(msgspec.Struct, kw_only=True):
    extension_id: str
    number: str
    enabled: bool
    pin_set: bool
    email: str | None
    attach_audio: bool
    has_greeting: bool
    locked_until: datetime | None


class VoicemailMessage(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    extension_id: str | None
    mailbox: str
    caller: str
    duration_s: int
    received_at: datetime
    size_bytes: int
    emailed: bool


def check_email(value: str) -> str | None:
    """Why ``value`` cannot be a mailbox address (one plain address, no display name), or None."""
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        return "one email address (name@example.com)"
    return None
