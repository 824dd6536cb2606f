"""Auto-recharge across two daemons (issue 19, Must show: "auto-recharge still at most once per
hour across daemons"). Every daemon runs the wallet follower (it is not leased), so both hear a
balance fall under the threshold and both try: the hour's reference (``recharge_reference``)
and ``payment_charges`` unique per (partner, reference) make it one charge at localstripe and
one credit. Two daemons here: two pools with their node ids, two WalletServices with their own
Stripe clients, two followers LISTENing; the module's app (conftest) only sets the partner up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from localstripe_support import LocalStripe
from wallet_support import ledger_mismatches

from controlplane.config import WalletConfig
from controlplane.db.database import create_pool
from controlplane.wallet.follower import WalletFollower
from controlplane.wallet.models import recharge_reference
from controlplane.wallet.services import WalletServices

Api = Any  # conftest.Api
PLATFORM = "platform-token"
ON = {"enabled": True, "threshold_micros": 50_000_000, "amount_micros": 100_000_000}
RACERS = 4  # direct recharges per daemon, at once, beside the followers' own


@pytest.fixture
async def daemons(api: Api, localstripe: LocalStripe, database_dsn: str) -> AsyncIterator[list[WalletFollower]]:
    followers: list[WalletFollower] = []
    tasks: list[asyncio.Task[None]] = []
    pools: list[asyncpg.Pool] = []
    try:
        for node in ("node-a", "node-b"):
            pool = await create_pool(database_dsn, 1, 4, node_id=node)
            pools.append(pool)
            services = WalletServices(pool, localstripe.provider(), WalletConfig())
            services.clock = api.clock  # one clock: the test moves the hour for both
            # No periodic sweep during the test: the notifications are what both daemons react to.
            follower = WalletFollower(pool, services, lambda _change: None, sweep_seconds=3600)
            services.poke = follower.poke
            followers.append(follower)
            tasks.append(asyncio.create_task(follower.run()))
        for follower in followers:
            await asyncio.wait_for(follower.listening.wait(), 10)
        yield followers
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pool in pools:
            await pool.close()


async def adjust(api: Api, pid: str, micros: int, ref: str) -> None:
    body = {"amount_micros": abs(micros), "reason": "test", "reference": ref,
            "direction": "credit" if micros > 0 else "debit"}
    r = await api.call("POST", "/v1/wallet/adjustments", pid, body, token=PLATFORM)
    assert r.status == 201, r.body


async def both_looked(followers: list[WalletFollower], before: list[int]) -> None:
    """Each daemon's follower looked at the partner after the change (its notification)."""
    deadline = time.monotonic() + 15
    while any(f.checked <= n for f, n in zip(followers, before, strict=True)):
        assert time.monotonic() < deadline, [f.checked for f in followers]
        await asyncio.sleep(0.05)


async def race(api: Api, followers: list[WalletFollower], pid: str, micros: int, ref: str) -> None:
    """A balance change that both followers hear, and direct recharges from both daemons at once."""
    before = [f.checked for f in followers]
    await adjust(api, pid, micros, ref)
    await asyncio.gather(*(f.services.recharge(pid) for f in followers for _ in range(RACERS)))
    await both_looked(followers, before)


async def test_two_daemons_recharge_a_partner_at_most_once_per_hour(
        api: Api, localstripe: LocalStripe, pool: asyncpg.Pool, daemons: list[WalletFollower]) -> None:
    pid = await api.partner()
    await api.add_card(localstripe, pid)
    assert (await api.call("PUT", "/v1/wallet/auto-recharge", pid, ON)).status == 200

    async def recharges() -> list[tuple[int, str]]:
        return [(r["amount"], r["reference"]) for r in await pool.fetch(
            "SELECT amount, reference FROM wallet_entries WHERE partner_id = $1 AND kind = 'auto_recharge'"
            " ORDER BY id", pid)]

    async def charges() -> list[str]:
        return [r["reference"] for r in await pool.fetch(
            "SELECT reference FROM payment_charges WHERE partner_id = $1 ORDER BY reference", pid)]

    first = recharge_reference(pid, api.clock())
    await race(api, daemons, pid, 10_000_000, "start")  # 10 < 50: due
    assert await recharges() == [(100_000_000, first)]
    # Spent under the threshold again within the hour: both try again, nothing more is charged.
    await race(api, daemons, pid, -80_000_000, "spend-1")  # 110 -> 30
    assert await recharges() == [(100_000_000, first)]
    assert await charges() == [first]
    assert len(localstripe.intents_for(f"{pid}:{first}")) == 1

    api.clock.advance(hours=1)  # the next hour: one more, whichever daemon comes first
    second = recharge_reference(pid, api.clock())
    assert second != first
    await race(api, daemons, pid, -1_000_000, "spend-2")  # 29: still due, a new hour
    assert await recharges() == [(100_000_000, first), (100_000_000, second)]
    assert await charges() == sorted([first, second])
    assert len(localstripe.intents_for(f"{pid}:{second}")) == 1
    assert await pool.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1", pid) == 129_000_000
    assert await ledger_mismatches(pool) == []
