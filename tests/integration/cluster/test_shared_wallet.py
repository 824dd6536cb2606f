"""Admission with two nodes on the real PostgreSQL: a partner's two tenants live on different
nodes (two engines, two pools with their node ids); 20 calls at once against 60 s of the
partner's wallet credit: what is admitted overshoots by at most one increment. The same calls
through the engines alone (no shared holds) admit the credit once per node."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

import asyncpg
from wallet_support import LONG_AGO

from cdr_ingest.classify import CallClass, Direction
from cdr_ingest.pricing import partner_rate
from cdr_ingest.rating import price
from cdr_ingest.tiers import Tier
from controlplane.account import store as account_store
from controlplane.calls.recorder import CallRecorder
from controlplane.db.database import create_pool
from controlplane.limits.engine import Engine
from controlplane.limits.policy import Decision
from controlplane.limits.shared_wallet import SharedWallet
from controlplane.profiles.models import AssignmentBody
from controlplane.profiles.services import ProfileServices
from controlplane.tenants.applier import Applier
from controlplane.tenants.models import PartnerCreate, PartnerTier, TenantCreate
from controlplane.tenants.services import TenantServices
from controlplane.wallet import store as wallet_store
from controlplane.wallet.models import Entry, EntryKind
from provisioning.model import PartnerStatus

LOCAL = "+15015550100"
INCREMENT = 6


def wholesale_price(seconds: int) -> int:
    rate = partner_rate(Tier.BUSINESS, CallClass.LOCAL, Direction.OUTBOUND, LOCAL[1:], datetime.now(UTC))
    assert rate is not None
    return price(rate, seconds)


async def partner_with_two_tenants(pool: asyncpg.Pool) -> tuple[str, str, str]:
    tenants = TenantServices(pool, Applier(pool))
    tag = secrets.token_hex(3)
    partner = (await tenants.create_partner(PartnerCreate(name=f"p{tag}", tier=PartnerTier.BUSINESS))).id
    ids = []
    for prefix in (f"a{tag}", f"b{tag}"):
        t = await tenants.create_tenant(partner, TenantCreate(name=prefix, billing_email="a@b.co", sip_prefix=prefix))
        await ProfileServices(pool).assign(partner, t.id, AssignmentBody(
            per_minute_micros=50_000, min_seconds=60, increment_seconds=INCREMENT))
        ids.append(t.id)
    async with pool.acquire() as conn, conn.transaction():
        await account_store.set_status(conn, partner, PartnerStatus.ACTIVE, activated_at=LONG_AGO)
        await wallet_store.post(conn, Entry(partner, EntryKind.MANUAL_ADJUSTMENT, wholesale_price(60),
                                            f"adjust:{tag}"))
    return partner, ids[0], ids[1]


def admitted_seconds(decisions: list[Decision]) -> int:
    return sum(d.limit_s or 0 for d in decisions if d.admit)


async def race(admits: list, tenants: tuple[str, str], tag: str) -> list[Decision]:  # type: ignore[type-arg]
    return list(await asyncio.gather(*(admits[i % 2](tenants[i % 2], LOCAL, f"{tag}-{i}", f"PJSIP/x-{i}", False)
                                       for i in range(20))))


async def test_twenty_calls_on_two_nodes_against_sixty_seconds(database_dsn: str) -> None:
    pools = [await create_pool(database_dsn, 1, 6, node_id=n) for n in ("sw-a", "sw-b")]
    try:
        _, ta, tb = await partner_with_two_tenants(pools[0])
        engines = [Engine(p, CallRecorder(p).billing) for p in pools]
        for engine in engines:
            await engine.load_all()
        shared = [SharedWallet(p, e, n).admit for p, e, n in zip(pools, engines, ("sw-a", "sw-b"), strict=True)]
        decisions = await race(shared, (ta, tb), "sw")
        admitted = [d for d in decisions if d.admit]
        assert admitted, [d.reason for d in decisions]
        assert 0 < admitted_seconds(decisions) <= 60 + INCREMENT, [(d.admit, d.limit_s) for d in decisions]
        assert {d.reason.value for d in decisions if not d.admit} == {"wallet_empty"}
        # Each admitted hold is in the database, with the node that admitted it.
        rows = await pools[0].fetch("SELECT node_id, wallet_micros FROM limit_reservations WHERE call_id LIKE 'sw-%'")
        assert len(rows) == len(admitted) and {r["node_id"] for r in rows} <= {"sw-a", "sw-b"}

        # The baseline, same run: a second partner, the engines alone (what one node knows).
        _, ua, ub = await partner_with_two_tenants(pools[0])
        alone = [Engine(p, CallRecorder(p).billing) for p in pools]
        for engine in alone:
            await engine.load_all()
        baseline = await race([e.admit for e in alone], (ua, ub), "alone")
        assert admitted_seconds(baseline) > 60 + INCREMENT  # each node admitted the whole credit
    finally:
        for pool in pools:
            await pool.close()
