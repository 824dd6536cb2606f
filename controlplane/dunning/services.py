"""Decides the partner's dunning settings (GET/PUT/DELETE /v1/account/dunning)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from controlplane import audit
from controlplane.dunning import store
from controlplane.dunning.models import DunningSettings, DunningSettingsBody
from controlplane.shared.problems import Problem


def _not_found() -> Problem:
    return Problem(404, "no such partner", code="not_found")


@dataclass(frozen=True)
class DunningServices:
    pool: asyncpg.Pool

    async def settings(self, partner_id: str) -> DunningSettings:
        async with self.pool.acquire() as conn:
            found = await store.settings(conn, partner_id)
        if found is None:
            raise _not_found()
        return found

    async def put_settings(self, partner_id: str, body: DunningSettingsBody) -> DunningSettings:
        async with self.pool.acquire() as conn, conn.transaction():
            before = await store.settings(conn, partner_id)
            if before is None:
                raise _not_found()
            await store.put_settings(conn, partner_id, body)
            after = await store.settings(conn, partner_id)
            await audit.record(conn, action="update", resource="dunning_settings", resource_id=partner_id,
                               partner_id=partner_id, before=before, after=after)
        assert after is not None
        return after

    async def delete_settings(self, partner_id: str) -> DunningSettings:
        """Back to each tenant's billing profile."""
        async with self.pool.acquire() as conn, conn.transaction():
            before = await store.settings(conn, partner_id)
            if before is None:
                raise _not_found()
            await store.delete_settings(conn, partner_id)
            after = await store.settings(conn, partner_id)
            await audit.record(conn, action="update", resource="dunning_settings", resource_id=partner_id,
                               partner_id=partner_id, before=before, after=after)
        assert after is not None
        return after
