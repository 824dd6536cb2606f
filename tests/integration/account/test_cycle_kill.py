"""The cycle job killed with SIGKILL half-way through 200 partners, then run again: exactly one
set of charges per partner (unit fees in the wallet, the month's fee on the card, one invoice).

The job runs in a subprocess against the module's PostgreSQL and localstripe; the test watches
the database and kills it once about half of the partners have been charged."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

from account_world import World

from controlplane.account.jobs import run_cycle
from controlplane.payments.charges import idempotency_key

PARTNERS = 200
CYCLE, NOW = "2027-02", "2027-02-01T00:05:00+00:00"
CHILD = """
import asyncio, sys
from datetime import datetime
import asyncpg
from controlplane.account.jobs import run_cycle
from controlplane.payments.stripe_provider import StripeProvider

async def main() -> None:
    pool = await asyncpg.create_pool(sys.argv[1], min_size=1, max_size=2)
    provider = StripeProvider(sys.argv[2], api_base=sys.argv[3], max_network_retries=0)
    await run_cycle(pool, provider, datetime.fromisoformat(sys.argv[4]))

asyncio.run(main())
"""


async def _partners(world: World) -> list[str]:
    ids = [f"ptr_kill{i:04d}" for i in range(PARTNERS)]
    async with world.pool.acquire() as conn, conn.transaction():
        for i, pid in enumerate(ids):
            await conn.execute("INSERT INTO partners (id, name, tier, status, activated_at, created_at)"
                               " VALUES ($1, 'Reseller', 'STARTER', 'ACTIVE', '2027-01-15T00:00Z', '2027-01-01T00:00Z')",
                               pid)
            await conn.execute("INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status)"
                               " VALUES ($1, $2, 'T', $3, 'b@x.co', 'ACTIVE')", f"ten_kill{i:04d}", pid,
                               f"kil{i:04d}")
            for n in ("101", "102"):
                await conn.execute("INSERT INTO extensions (id, tenant_id, number, display_name, sip_ha1, created_at)"
                                   " VALUES ($1, $2, $3, 'x', 'ha1', '2027-01-20T00:00Z')",
                                   f"ext_kill{i:04d}_{n}", f"ten_kill{i:04d}", n)
            await conn.execute("INSERT INTO dids (id, partner_id, number, status, kind, created_at)"
                               " VALUES ($1, $2, $3, 'RELEASED', 'local', '2027-01-20T00:00Z')",
                               f"did_kill{i:04d}", pid, f"+1501556{i:04d}")
    for start in range(0, PARTNERS, 10):
        await asyncio.gather(*(world.card(pid) for pid in ids[start:start + 10]))
    return ids


async def test_the_cycle_job_killed_half_way_then_run_again_charges_each_partner_once(
        world: World, database_dsn: str) -> None:
    ids = await _partners(world)
    child = subprocess.Popen([sys.executable, "-c", CHILD, database_dsn, world.stripe.secret_key, world.stripe.base,
                              NOW], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
    charged_at_kill = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and child.poll() is None:
            charged_at_kill = int(await world.pool.fetchval(
                "SELECT count(*) FROM payment_charges WHERE reference = $1", f"sub:{CYCLE}"))
            if charged_at_kill >= PARTNERS // 2:
                child.send_signal(signal.SIGKILL)
                break
            await asyncio.sleep(0.01)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(30)
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode() if child.stderr else ""
    state = await world.pool.fetchrow(
        "SELECT (SELECT count(DISTINCT partner_id) FROM wallet_entries WHERE reference LIKE 'fee:%') AS billed,"
        " (SELECT count(*) FROM subscription_invoices) AS invoices,"
        " (SELECT count(*) FROM payment_charges WHERE status = 'PENDING') AS pending")
    print(f"killed with {charged_at_kill} card charges begun, {state['billed']} partners' unit fees posted,"
          f" {state['invoices']} invoices, {state['pending']} charges pending")
    assert PARTNERS // 2 <= charged_at_kill < PARTNERS and state["invoices"] < PARTNERS

    started = time.monotonic()
    report = await run_cycle(world.pool, world.provider, datetime.fromisoformat(NOW))
    rerun_s = time.monotonic() - started
    assert report.errors == [] and report.partners == PARTNERS
    started = time.monotonic()
    again = await run_cycle(world.pool, world.provider, datetime.fromisoformat(NOW))
    print(f"re-run: {report.fees_charged} fees charged, {report.unit_entries} unit entries in {rerun_s:.2f} s;"
          f" a run with nothing left to charge over {PARTNERS} partners: {time.monotonic() - started:.2f} s")
    assert (again.unit_entries, again.fees_charged, again.fees_failed) == (0, 0, 0)

    entries = await world.pool.fetch(
        "SELECT partner_id, count(*) AS n, sum(amount) AS total FROM wallet_entries WHERE reference LIKE $1"
        " GROUP BY partner_id", f"fee:{CYCLE}:%")
    assert {r["partner_id"]: (r["n"], r["total"]) for r in entries} == {
        pid: (3, -(3_000_000 * 2 + 1_750_000)) for pid in ids}
    charges = await world.pool.fetch("SELECT partner_id, status, attempt, amount_micros FROM payment_charges"
                                     " WHERE reference = $1", f"sub:{CYCLE}")
    assert sorted((r["partner_id"], r["status"], r["attempt"], r["amount_micros"]) for r in charges) == [
        (pid, "SUCCEEDED", 1, 249_000_000) for pid in ids]
    invoices = await world.pool.fetch("SELECT partner_id, count(*) AS n FROM subscription_invoices"
                                      " GROUP BY partner_id")
    assert {r["partner_id"]: r["n"] for r in invoices} == {pid: 1 for pid in ids}
    # at the card processor: one PaymentIntent per partner for the month, none twice
    keys = [pi.to_dict().get("metadata", {}).get("idempotency_key")
            for pi in world.stripe.client().v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()]
    month = [k for k in keys if k and k.endswith(f":sub:{CYCLE}")]
    assert sorted(month) == sorted(idempotency_key(pid, f"sub:{CYCLE}") for pid in ids)
    mismatches = await world.pool.fetch("SELECT * FROM wallet_mismatches()")
    assert mismatches == []
