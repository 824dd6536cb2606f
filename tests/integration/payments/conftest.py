"""One localstripe per test module (like the module's database), and partners to charge."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from localstripe_support import localstripe  # noqa: F401  (the module's fixture)

from controlplane.shared.ids import new_id


PartnerFactory = Callable[[], Awaitable[str]]


@pytest.fixture(scope="module")
def make_partner(pool: asyncpg.Pool) -> PartnerFactory:
    async def make() -> str:
        partner_id = new_id("ptr")
        await pool.execute("INSERT INTO partners (id, name, tier) VALUES ($1, 'Reseller', 'BUSINESS')", partner_id)
        return partner_id

    return make
