"""The invoice job killed with SIGKILL half-way through 200 tenants, then run again (twice):
exactly one invoice per tenant and period, numbers gapless, one invoice.created each.

The job runs in a subprocess against the module's PostgreSQL; the test watches the invoice
table and kills the child once about half of the tenants are invoiced."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import asyncpg
from invoice_support import NOV, OCT, MonthlyLookup, calls, partner, tenant

from controlplane.invoices.jobs import run_invoices

TENANTS = 200
RUN_AT = NOV + timedelta(minutes=5)
CHILD = """
import asyncio, sys
from datetime import datetime
import asyncpg
from invoice_support import MonthlyLookup
from controlplane.invoices.jobs import run_invoices

async def main() -> None:
    pool = await asyncpg.create_pool(sys.argv[1], min_size=1, max_size=2,
                                     server_settings={'application_name': 'invoice-job-kill'})
    await run_invoices(pool, datetime.fromisoformat(sys.argv[2]), lookup=MonthlyLookup(), batch_size=2)

asyncio.run(main())
"""


async def _tenants(pool: asyncpg.Pool) -> tuple[list[str], list[str]]:
    async with pool.acquire() as conn, conn.transaction():
        partners = [await partner(conn) for _ in range(3)]
        ids = []
        for i in range(TENANTS):
            pid = partners[i % 3]
            tid = await tenant(conn, pid, created=OCT - timedelta(days=30), extensions=6 + i % 3, dids=3,
                               tenant_id=f"ten_kill{i:04d}")
            await calls(conn, pid, tid, OCT + timedelta(days=2), [1800] * 20)  # 600 min: 100 over
            ids.append(tid)
    return partners, ids


async def test_the_invoice_job_killed_half_way_then_run_again_invoices_each_tenant_once(
        pool: asyncpg.Pool, database_dsn: str) -> None:
    partners, ids = await _tenants(pool)
    support = os.path.join(os.getcwd(), "tests", "support")
    child = subprocess.Popen([sys.executable, "-c", CHILD, database_dsn, RUN_AT.isoformat()],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), support])})
    at_kill = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and child.poll() is None:
            at_kill = int(await pool.fetchval("SELECT count(*) FROM tenant_invoices"))
            if at_kill >= TENANTS // 2:
                child.send_signal(signal.SIGKILL)
                break
            await asyncio.sleep(0.005)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(30)
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode() if child.stderr else ""
    # A COMMIT the child sent just before dying still lands: count once its backends are gone.
    while await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'invoice-job-kill'"):
        assert time.monotonic() < deadline + 30, "the killed job's backends never went away"
        await asyncio.sleep(0.01)
    left = int(await pool.fetchval("SELECT count(*) FROM tenant_invoices"))
    print(f"killed with {at_kill} invoices seen, {left} committed")
    assert TENANTS // 2 <= left < TENANTS

    report = await run_invoices(pool, RUN_AT, lookup=MonthlyLookup())
    again = await run_invoices(pool, RUN_AT, lookup=MonthlyLookup())
    print(f"re-run: {report.invoiced} invoiced, {report.already} already; second re-run: {again.invoiced}")
    assert report.errors == [] and report.invoiced == TENANTS - left and report.already == left
    assert (again.invoiced, again.already) == (0, TENANTS)

    rows = await pool.fetch("SELECT tenant_id, count(*) AS n, min(total_micros) AS lo, max(total_micros) AS hi"
                            " FROM tenant_invoices GROUP BY tenant_id")
    assert {r["tenant_id"]: r["n"] for r in rows} == {t: 1 for t in ids}
    # 99 + 1..3 extensions x 20 + 1 DID x 4 + 100 min x 0.025: the same whichever run made it
    expected = {f"ten_kill{i:04d}": 99_000_000 + (1 + i % 3) * 20_000_000 + 4_000_000 + 2_500_000
                for i in range(TENANTS)}
    assert {r["tenant_id"]: (r["lo"], r["hi"]) for r in rows} == {t: (v, v) for t, v in expected.items()}
    for pid in partners:
        numbers = sorted(r["number"] for r in await pool.fetch(
            "SELECT number FROM tenant_invoices WHERE partner_id = $1", pid))
        assert numbers == [f"INV-{n:06d}" for n in range(1, len(numbers) + 1)]
        assert await pool.fetchval("SELECT next_number FROM invoice_numbering WHERE partner_id = $1",
                                   pid) == len(numbers) + 1
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'invoice.created'") == TENANTS
