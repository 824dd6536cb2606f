"""Creating, editing, revoking and deleting API keys (portal only; see docs/api.md)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import msgspec
from msgspec import UNSET

from controlplane import audit
from controlplane.apikeys import store
from controlplane.apikeys.models import (
    MAX_KEY_LIMIT, PREFIX, ApiKey, ApiKeyCreate, ApiKeyCreated, ApiKeySecrets, ApiKeyUpdate, KeyStatus,
    hash_key)
from controlplane.shared.pagination import PageRequest, next_page
from controlplane.shared.problems import Problem
from controlplane.shared.scopes import SCOPES

MAX_TENANTS = 1000


def new_key() -> str:
    # 256 random bits; token_urlsafe's alphabet keeps it one shell word.
    return PREFIX + secrets.token_urlsafe(32)


def _scopes(scopes: list[str]) -> list[str]:
    if not scopes:
        raise Problem(422, "scopes: grant at least one scope", field="scopes")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise Problem(422, f"scopes: unknown scope {unknown[0]!r}; one of {', '.join(SCOPES)}", field="scopes")
    return sorted(set(scopes))


def _rate(limit: int) -> int:
    if not 1 <= limit <= MAX_KEY_LIMIT:
        raise Problem(422, f"rate_limit: requests per minute, 1 to {MAX_KEY_LIMIT:,}", field="rate_limit")
    return limit


@dataclass
class KeyServices:
    pool: asyncpg.Pool
    # Called after a key changes, so this process stops trusting its cached copy.
    on_change: Callable[[str], None] = lambda key_id: None

    async def _tenants(self, conn: store.Conn, partner_id: str, tenant_ids: list[str] | None) -> list[str] | None:
        if tenant_ids is None:
            return None
        wanted = sorted(set(tenant_ids))
        if not wanted or len(wanted) > MAX_TENANTS:
            raise Problem(422, f"tenant_ids: 1 to {MAX_TENANTS} tenants, or null for all", field="tenant_ids")
        missing = set(wanted) - await store.known_tenants(conn, partner_id, wanted)
        if missing:
            raise Problem(422, f"tenant_ids: no tenant {sorted(missing)[0]} for this partner", field="tenant_ids")
        return wanted

    async def create(self, partner_id: str, body: ApiKeyCreate) -> ApiKeyCreated:
        name = body.name.strip()
        if not 1 <= len(name) <= 100:
            raise Problem(422, "name: 1 to 100 characters", field="name")
        scopes, rate = _scopes(body.scopes), _rate(body.rate_limit)
        if body.expires_at is not None:
            if body.expires_at.tzinfo is None:
                raise Problem(422, "expires_at needs a time zone (e.g. Z)", field="expires_at")
            if body.expires_at <= datetime.now(UTC):
                raise Problem(422, "expires_at must be in the future", field="expires_at")
        key, key_id = new_key(), f"key_{secrets.token_hex(8)}"
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.partner_exists(conn, partner_id):
                raise Problem(404, f"no partner {partner_id}", code="not_found")
            tenants = await self._tenants(conn, partner_id, body.tenant_ids)
            await store.insert(conn, key_id, partner_id, name, hash_key(key), key[-4:], scopes, tenants, rate,
                               body.expires_at)
            created = await self._get(conn, partner_id, key_id)
            await audit.record(conn, action="create", resource="api_key", resource_id=key_id,
                               partner_id=partner_id, after=created)
        return ApiKeyCreated(**msgspec.structs.asdict(created), secrets=ApiKeySecrets(key=key))

    async def get(self, partner_id: str, key_id: str) -> ApiKey:
        async with self.pool.acquire() as conn:
            return await self._get(conn, partner_id, key_id)

    async def list_keys(self, partner_id: str, page: PageRequest,
                        status: str | None) -> tuple[list[ApiKey], str | None]:
        if status is not None and status not in KeyStatus.__members__:
            raise Problem(422, f"status must be one of {', '.join(KeyStatus)}", field="status")
        async with self.pool.acquire() as conn:
            return next_page(await store.list_page(conn, partner_id, page, KeyStatus(status) if status else None),
                             page)

    async def update(self, partner_id: str, key_id: str, body: ApiKeyUpdate) -> ApiKey:
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._get(conn, partner_id, key_id, lock=True)
            if body.name is not UNSET and body.name != current.name:
                raise Problem(409, "a key's name cannot change; create a new key", field="name", code="immutable")
            if current.status is KeyStatus.REVOKED:
                raise Problem(409, "the key is revoked", code="key_revoked")
            scopes = current.scopes if body.scopes is UNSET else _scopes(body.scopes)
            tenants = current.tenant_ids if body.tenant_ids is UNSET \
                else await self._tenants(conn, partner_id, body.tenant_ids)
            rate = current.rate_limit if body.rate_limit is UNSET else _rate(body.rate_limit)
            await store.update(conn, key_id, scopes, tenants, rate)
            updated = await self._get(conn, partner_id, key_id)
            await audit.record(conn, action="update", resource="api_key", resource_id=key_id,
                               partner_id=partner_id, before=current, after=updated)
        self.on_change(key_id)
        return updated

    async def revoke(self, partner_id: str, key_id: str) -> ApiKey:
        """Idempotent: revoking a revoked key returns it unchanged."""
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._get(conn, partner_id, key_id, lock=True)
            if current.revoked_at is None:
                await store.revoke(conn, key_id)
            revoked = await self._get(conn, partner_id, key_id)
            if current.revoked_at is None:
                await audit.record(conn, action="revoke", resource="api_key", resource_id=key_id,
                                   partner_id=partner_id, before=current, after=revoked)
        self.on_change(key_id)
        return revoked

    async def delete(self, partner_id: str, key_id: str) -> None:
        """The key goes; its audit entries stay (they name it by id)."""
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._get(conn, partner_id, key_id, lock=True)
            await store.delete(conn, key_id)
            await audit.record(conn, action="delete", resource="api_key", resource_id=key_id,
                               partner_id=partner_id, before=current)
        self.on_change(key_id)

    @staticmethod
    async def _get(conn: store.Conn, partner_id: str, key_id: str, *, lock: bool = False) -> ApiKey:
        row = await store.get(conn, partner_id, key_id, lock=lock)
        if row is None:
            raise Problem(404, f"no API key {key_id} for this partner", code="not_found")
        return store.key_from(row)
