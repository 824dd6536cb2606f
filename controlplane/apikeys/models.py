"""API keys as stored and as shown (never with the secret, except once at creation)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

import msgspec
from msgspec import UNSET, UnsetType

PREFIX = "sk_live_"
# Requests per minute a key may make: the default, and the most a partner may set.
DEFAULT_KEY_LIMIT = 100
MAX_KEY_LIMIT = 10_000


def hash_key(key: str) -> bytes:
    """What a key is stored and looked up by (see ``auth`` for why a fast hash)."""
    return hashlib.sha256(key.encode()).digest()


class KeyStatus(StrEnum):
    ACTIVE = "ACTIVE"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ApiKeyCreate(_Body):
    name: str
    scopes: list[str]
    # None or absent: every tenant of the partner.
    tenant_ids: list[str] | None = None
    rate_limit: int = DEFAULT_KEY_LIMIT
    expires_at: datetime | None = None


class ApiKeyUpdate(_Body):
    scopes: list[str] | UnsetType = UNSET
    tenant_ids: list[str] | None | UnsetType = UNSET
    rate_limit: int | UnsetType = UNSET
    # Accepted only when unchanged: a key's name is fixed (seed 003, "Managing keys").
    name: str | UnsetType = UNSET


class ApiKey(msgspec.Struct, kw_only=True):
    id: str
    partner_id: str
    name: str
    masked_key: str
    scopes: list[str]
    tenant_ids: list[str] | None
    rate_limit: int
    status: KeyStatus
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ApiKeySecrets(msgspec.Struct, kw_only=True):
    key: str


class ApiKeyCreated(ApiKey, kw_only=True):
    """The only response that carries the plaintext key (in ``secrets``; docs/api.md "Response shapes")."""

    secrets: ApiKeySecrets


def mask(last4: str) -> str:
    return f"{PREFIX}...{last4}"
