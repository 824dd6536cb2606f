"""Decides the brand settings: validate everything first, then write in one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

from controlplane.brand import logo as logo_check, store, validation
from controlplane.brand.models import Brand, Company, Notifications
from controlplane.shared.problems import Problem


def _not_found() -> Problem:
    return Problem(404, "no such partner", code="not_found")


def _refuse(patch: validation.Patch) -> None:
    if patch.errors:
        raise Problem(422, "; ".join(e.message for e in patch.errors), errors=list(patch.errors))


@dataclass(frozen=True)
class BrandServices:
    pool: asyncpg.Pool

    async def company(self, partner_id: str) -> Company:
        found = await store.company(self.pool, partner_id)
        if found is None:
            raise _not_found()
        return found

    async def brand(self, partner_id: str) -> Brand:
        found = await store.brand(self.pool, partner_id)
        if found is None:
            raise _not_found()
        return found

    async def notifications(self, partner_id: str) -> Notifications:
        found = await store.notifications(self.pool, partner_id)
        if found is None:
            raise _not_found()
        return found

    async def _update(self, partner_id: str, patch: validation.Patch) -> None:
        _refuse(patch)
        async with self.pool.acquire() as conn, conn.transaction():
            if await store.company(conn, partner_id) is None:
                raise _not_found()
            await store.update(conn, partner_id, patch.values)

    async def update_company(self, partner_id: str, document: Mapping[str, object]) -> Company:
        await self._update(partner_id, validation.check_company(document))
        return await self.company(partner_id)

    async def update_brand(self, partner_id: str, document: Mapping[str, object]) -> Brand:
        await self._update(partner_id, validation.check_brand(document))
        return await self.brand(partner_id)

    async def update_notifications(self, partner_id: str, document: Mapping[str, object]) -> Notifications:
        await self._update(partner_id, validation.check_notifications(document))
        return await self.notifications(partner_id)

    async def logo(self, partner_id: str) -> tuple[str, bytes, str]:
        found = await store.logo(self.pool, partner_id)
        if found is None:
            raise Problem(404, "this partner has no logo", code="not_found")
        return found

    async def put_logo(self, partner_id: str, content_type: str, data: bytes) -> Brand:
        try:
            checked = logo_check.check(content_type, data)
        except logo_check.LogoRejected as exc:
            raise Problem(422, f"logo: {exc}", field="logo") from None
        async with self.pool.acquire() as conn, conn.transaction():
            if await store.company(conn, partner_id) is None:
                raise _not_found()
            await store.put_logo(conn, partner_id, checked.content_type, checked.data)
        return await self.brand(partner_id)

    async def delete_logo(self, partner_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.delete_logo(conn, partner_id):
                raise Problem(404, "this partner has no logo", code="not_found")
