"""Admission latency: the in-memory decision and the whole FastAGI exchange (as Asterisk does it).

Prints p50/p99 of (a) Engine.admit alone and (b) one AGI(agi://.../admit) round trip
over loopback TCP, against an embedded PostgreSQL with a tenant that has minutes,
spend and concurrency caps. Target: p99 <= 2 ms.
Not measured here yet: the SIPp call-rate ratio with/without admission (needs the
Asterisk runner; see docs/limits.md "Open items").
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration" / "limits"))

import asyncpg  # noqa: E402
from agi_client import agi_admit  # noqa: E402

from controlplane.calls.models import BillingProfileBody  # noqa: E402
from controlplane.calls.recorder import CallRecorder  # noqa: E402
from controlplane.calls.services import CallServices  # noqa: E402
from controlplane.db.database import create_database, migrate_dsn  # noqa: E402
from controlplane.db.embedded import EmbeddedPostgres  # noqa: E402
from controlplane.limits.agi import AgiServer  # noqa: E402
from controlplane.limits.engine import Engine  # noqa: E402
from controlplane.limits.models import LimitsBody  # noqa: E402
from controlplane.limits.services import LimitServices  # noqa: E402
from controlplane.tenants.applier import Applier  # noqa: E402
from controlplane.tenants.models import PartnerCreate, PartnerTier, TenantCreate  # noqa: E402
from controlplane.tenants.services import TenantServices  # noqa: E402

N = 5000


def pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * p))] * 1000


async def main(dsn: str) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    tenants = TenantServices(pool, Applier(pool))
    partner = (await tenants.create_partner(PartnerCreate(name="B", tier=PartnerTier.BUSINESS))).id
    tenant = (await tenants.create_tenant(partner, TenantCreate(name="Bench", billing_email="a@b.co"))).id
    await CallServices(pool).put_profile(partner, tenant, BillingProfileBody(per_minute_micros=50_000))
    engine = Engine(pool, CallRecorder(pool).billing)
    services = LimitServices(pool, engine)
    await services.put(partner, tenant, LimitsBody(monthly_minutes=10**6, monthly_spend_micros=10**12,
                                                   max_outbound_calls=10**6))
    state = await engine.tenant(tenant)
    assert state is not None
    engine_times: list[float] = []
    for i in range(N):
        start = time.perf_counter()
        decision = await engine.admit(tenant, "+15015550100", f"e{i}")
        engine_times.append(time.perf_counter() - start)
        assert decision.admit
        engine.release(state, f"e{i}")
    server = AgiServer(engine.admit, port=0)
    await server.start()
    agi_times: list[float] = []
    for i in range(N):
        start = time.perf_counter()
        got = await agi_admit(server.port, tenant, "+15015550100", f"a{i}")
        agi_times.append(time.perf_counter() - start)
        assert got["CP_ADMIT"] == "ok", got
        engine.release(state, f"a{i}")
    await server.stop()
    await engine.persist()
    await pool.close()
    print(f"admission decision (engine, in memory): p50 {pct(engine_times, .5):.3f} ms"
          f"  p99 {pct(engine_times, .99):.3f} ms  (n={N})")
    print(f"admission over FastAGI (TCP round trip incl. client): p50 {pct(agi_times, .5):.3f} ms"
          f"  p99 {pct(agi_times, .99):.3f} ms  mean {statistics.mean(agi_times) * 1000:.3f} ms  target p99 <= 2 ms")


def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp))
        server.start()
        try:
            name = f"bench_{secrets.token_hex(4)}"
            asyncio.run(_prepare_and_run(server, name))
        finally:
            server.stop()


async def _prepare_and_run(server: EmbeddedPostgres, name: str) -> None:
    await create_database(server.dsn(), name)
    await migrate_dsn(server.dsn(name))
    await main(server.dsn(name))


if __name__ == "__main__":
    run()
