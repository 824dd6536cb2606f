"""Wallet ledger on the calls' hot path: what posting one entry per call costs the recorder.

Run: .venv/bin/python bench/bench_wallet.py [--batches 40]
An embedded PostgreSQL; 4 ACTIVE partners (their calls post a usage entry each, reference
call:<id>, and move the balance) and 4 TRIAL partners (the baseline: the same statement and
the same usage upsert, no entry: nothing is drawn in trial), batches alternating so both see
the same machine. Figures: the recorder's whole group commit of 256 finished calls
(``CallRecorder.write_batch``: records, usage, ledger, events, commit) ACTIVE vs TRIAL, and
the settle statement alone (``calls.store.settle_many`` -> ``wallet.store.post_usage``).
Targets: the ledger adds at most 25 % to a group commit and at most 40 us per call to the
statement; afterwards every balance equals the sum of its entries (``wallet_mismatches()``).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import asyncpg  # noqa: E402
from scratch_db import scratch_database  # noqa: E402
from verdict import Verdicts  # noqa: E402

from cdr_ingest.callflow import CallSummary, Finished  # noqa: E402
from controlplane.account import store as account_store  # noqa: E402
from controlplane.calls import store as calls_store  # noqa: E402
from controlplane.profiles.models import AssignmentBody  # noqa: E402
from controlplane.calls.recorder import CallRecorder  # noqa: E402
from controlplane.profiles.services import ProfileServices  # noqa: E402
from controlplane.tenants.applier import Applier  # noqa: E402
from controlplane.tenants.models import PartnerCreate, PartnerTier, TenantCreate  # noqa: E402
from controlplane.tenants.services import TenantServices  # noqa: E402
from controlplane.wallet.models import Entry, call_reference, usage_kind  # noqa: E402
from provisioning.model import PartnerStatus  # noqa: E402

BATCH = 256
VERDICTS = Verdicts("bench_wallet")
# The calls start two hours ago (``bench``); the ACTIVE partners were activated before that.
ACTIVATED = datetime.now(UTC) - timedelta(hours=3)


def summary(tenant: str, at: datetime) -> CallSummary:
    answered = at + timedelta(seconds=2)
    return CallSummary(call_id=f"{at.timestamp():.0f}.{secrets.token_hex(4)}", tenant_id=tenant, inbound=False,
                       trunk_used=True, dialed="18005550199", caller_num="101", caller_channel="PJSIP/t_101-1",
                       answered_by="PJSIP/carrier-2", started_at=at, answered_at=answered,
                       ended_at=answered + timedelta(seconds=61), dial_status="ANSWER", hangup_cause=16)


async def tenants_of(pool: asyncpg.Pool, status: str) -> list[tuple[str, str]]:
    services = TenantServices(pool, Applier(pool))
    out = []
    for i in range(4):
        pid = (await services.create_partner(PartnerCreate(name=f"{status} {i}", tier=PartnerTier.BUSINESS))).id
        # The account store's status write (a comp activation's). An ACTIVE partner was activated
        # before the bench's calls started (a call that started before activation draws nothing);
        # a TRIAL one never was, so its calls and settle statements post no entry: the baseline.
        async with pool.acquire() as conn:
            await account_store.set_status(conn, pid, PartnerStatus(status), activated_at=ACTIVATED
                                           if status == "ACTIVE" else None)
        tid = (await services.create_tenant(pid, TenantCreate(name=f"T{i}", billing_email="a@b.co",
                                                              sip_prefix=f"{status.lower()}{i}"))).id
        await ProfileServices(pool).assign(pid, tid, AssignmentBody(per_minute_micros=50_000,
                                                                          toll_free_per_minute_micros=30_000))
        out.append((pid, tid))
    return out


async def settle_once(pool: asyncpg.Pool, tenants: list[tuple[str, str]]) -> float:
    cycle = date.today().replace(day=1)
    debits, usage = [], {}
    for i in range(BATCH):
        pid, tid = tenants[i % len(tenants)]
        call_id = f"call_{secrets.token_hex(12)}"
        cls = ("local", "toll_free", "international")[i % 3]
        debits.append(Entry(pid, usage_kind(cls), -(1_000 + i), call_reference(call_id), tenant_id=tid,
                            call_id=call_id, occurred_at=datetime.now(UTC)))
        sums = usage.setdefault((tid, cycle, cls), calls_store.UsageSum())
        sums.calls += 1
        sums.wholesale += 1_000 + i
    async with pool.acquire() as conn, conn.transaction():
        started = time.perf_counter()
        await calls_store.settle_many(conn, debits, usage)
        return time.perf_counter() - started


async def bench(dsn: str, batches: int) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    try:
        active, trial = await tenants_of(pool, "ACTIVE"), await tenants_of(pool, "TRIAL")
        recorder = CallRecorder(pool)
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        commit: dict[str, list[float]] = {"ACTIVE": [], "TRIAL": []}
        statement: dict[str, list[float]] = {"ACTIVE": [], "TRIAL": []}
        for n in range(batches + 5):  # the first 5 warm up
            for status in (("ACTIVE", "TRIAL") if n % 2 else ("TRIAL", "ACTIVE")):
                tenants = active if status == "ACTIVE" else trial
                calls = [Finished(summary(tenants[i % 4][1], base + timedelta(milliseconds=n * BATCH + i)))
                         for i in range(BATCH)]
                started = time.perf_counter()
                await recorder.write_batch(calls)
                if n >= 5:
                    commit[status].append(time.perf_counter() - started)
                    statement[status].append(await settle_once(pool, tenants))
        entries = await pool.fetchval("SELECT count(*) FROM wallet_entries")
        mismatches = await pool.fetchval("SELECT count(*) FROM wallet_mismatches()")
    finally:
        await pool.close()
    c_active, c_trial = (statistics.median(commit[s]) * 1000 for s in ("ACTIVE", "TRIAL"))
    s_active, s_trial = (statistics.median(statement[s]) * 1000 for s in ("ACTIVE", "TRIAL"))
    print(f"group commit of {BATCH} finished calls: ACTIVE {c_active:.2f} ms, TRIAL (baseline) {c_trial:.2f} ms")
    print(f"settle statement of {BATCH} calls: ACTIVE {s_active:.2f} ms, TRIAL (baseline) {s_trial:.2f} ms")
    VERDICTS.info("group commit, 256 calls, ACTIVE (ledger)", c_active, "ms")
    VERDICTS.info("group commit, 256 calls, TRIAL (baseline, no entries)", c_trial, "ms")
    VERDICTS.at_most("group commit ratio ACTIVE/TRIAL", c_active / c_trial, 1.25)
    VERDICTS.at_most("ledger cost in the settle statement per call", (s_active - s_trial) * 1000 / BATCH, 40, "us")
    VERDICTS.exactly("entries posted (one per ACTIVE call)", entries, (2 * batches + 5) * BATCH)
    VERDICTS.exactly("partners whose balance is not the sum of entries", mismatches, 0)


async def main(batches: int) -> int:
    async with scratch_database("bench-wallet-") as dsn:
        await bench(dsn, batches)
    return VERDICTS.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    sys.exit(asyncio.run(main(parser.parse_args().batches)))
