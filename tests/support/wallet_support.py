"""Wallet helpers for tests of other capabilities: funding through the ledger (never by
writing wallet tables), the partner status those tests need, and the ledger check.

A funded ACTIVE partner for account-level tests is tests/support/account_support.py's
(activation through the account capability); tests of calls and numbers only need a
partner whose wallet is drawn from (not TRIAL) and some money in it.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import asyncpg

from controlplane.account import store as account_store
from provisioning.model import PartnerStatus
from controlplane.wallet import store
from controlplane.wallet.models import Entry, EntryKind, adjustment_reference


# Tests record synthetic calls at fixed past moments: their partners are active since before.
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


async def make_active(pool: asyncpg.Pool, partner_id: str, since: datetime = LONG_AGO) -> None:
    """The partner leaves TRIAL: the status write of a comp activation (the account store's),
    without its charges and events. Calls started from ``since`` on are drawn from the wallet."""
    async with pool.acquire() as conn:
        await account_store.set_status(conn, partner_id, PartnerStatus.ACTIVE, activated_at=since,
                                       fee_invoiced=True)


async def fund(pool: asyncpg.Pool, partner_id: str, micros: int, note: str = "test funding") -> int:
    """Credit the wallet with one manual adjustment (a ledger entry); the balance after it."""
    async with pool.acquire() as conn, conn.transaction():
        posted = await store.post(conn, Entry(partner_id, EntryKind.MANUAL_ADJUSTMENT, micros,
                                              adjustment_reference(f"fixture-{secrets.token_hex(8)}"), note=note))
    return posted.balance_micros


async def active_funded(pool: asyncpg.Pool, partner_id: str, micros: int) -> int:
    await make_active(pool, partner_id)
    return await fund(pool, partner_id, micros)


async def ledger_mismatches(pool: asyncpg.Pool) -> list[tuple[str, int, int]]:
    """Partners whose balance is not the sum of their entries (the operator check)."""
    async with pool.acquire() as conn:
        return [(r["partner_id"], r["balance"], r["entries_total"]) for r in await store.mismatches(conn)]
