"""Tenant invoice generation: the invoice job over 10,000 tenants with 1,000,000 call records in
the period, against the bare aggregate query of the same data.

Run: .venv/bin/python bench/bench_invoices.py [--tenants 10000] [--calls 1000000] [--rounds 3]
An embedded PostgreSQL; 100 partners, each with its two default profiles (migration 0018's
function); tenants alternately on Flat Rate Starter and Pay-As-You-Go (assignments in F's
table, read through profiles.store like the daemon does), 6 extensions and 3 DIDs each (unit
history from the triggers), a tax jurisdiction on every other tenant, and the call records
spread over October 2026. Each round times the bare aggregate (billable seconds per tenant and
class over the period: what any invoice must read at least) then the whole job
(``run_invoices`` with ``terms.last_cycles``: periods and terms, usage, unit history, credits,
tax, numbering, inserts, events), deleting the invoices between rounds. The job reads usage from
the period counters the call recorder keeps beside the records (seeded here as it would have
written them); every invoice's minutes are checked against the records' aggregate. Target: the
job's median within 3x the aggregate's median; exactly one invoice per tenant; every tenant
invoiced for exactly its records' seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import asyncpg  # noqa: E402
from scratch_db import scratch_database  # noqa: E402
from verdict import Verdicts  # noqa: E402

from controlplane.db.connection import Connection  # noqa: E402
from controlplane.invoices import terms  # noqa: E402
from controlplane.invoices.jobs import run_invoices  # noqa: E402

VERDICTS = Verdicts("bench_invoices")
PARTNERS = 100
START, END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
RUN_AT = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)
AGGREGATE = ("SELECT tenant_id, call_class, sum(billable_s) FROM call_records"
             " WHERE started_at >= $1 AND started_at < $2 AND call_class = ANY($3::text[])"
             " GROUP BY tenant_id, call_class")


async def seed(conn: Connection, tenants: int, calls: int) -> None:
    await conn.execute(
        "INSERT INTO partners (id, name, tier, status, activated_at, created_at)"
        " SELECT 'ptr_b' || lpad(p::text, 3, '0'), 'Reseller', 'BUSINESS', 'ACTIVE', '2026-01-01Z', '2026-01-01Z'"
        " FROM generate_series(0, $1 - 1) p", PARTNERS)
    await conn.execute("SELECT billing_profiles_create_defaults(id) FROM partners")
    await conn.execute(
        "INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status, created_at)"
        " SELECT 'ten_b' || lpad(i::text, 6, '0'), 'ptr_b' || lpad((i % $2)::text, 3, '0'), 'T',"
        "  'b' || lpad(i::text, 6, '0'), 'billing@example.com', 'ACTIVE', '2026-09-01Z'"
        " FROM generate_series(0, $1 - 1) i", tenants, PARTNERS)
    await conn.execute(
        "INSERT INTO tenant_profile_assignments (tenant_id, effective_from, profile_id)"
        " SELECT t.id, t.created_at, b.id FROM tenants t JOIN billing_profiles b ON b.partner_id = t.partner_id"
        "  AND b.builtin = CASE WHEN right(t.id, 1)::int % 2 = 0 THEN 'flat' ELSE 'payg' END"
        " ON CONFLICT (tenant_id, effective_from) DO UPDATE SET profile_id = EXCLUDED.profile_id")
    await conn.execute(
        "INSERT INTO extensions (id, tenant_id, number, display_name, sip_ha1, created_at)"
        " SELECT t.id || '_' || n, t.id, (100 + n)::text, 'x', 'ha1', '2026-09-01Z'"
        " FROM tenants t, generate_series(1, 6) n")
    await conn.execute(
        "INSERT INTO dids (id, partner_id, number, tenant_id, status, kind, created_at)"
        " SELECT 'did_' || t.id || '_' || n, t.partner_id, '+1501' || lpad((row_number() OVER ())::text, 7, '0'),"
        "  t.id, 'ACTIVE', 'local', CASE WHEN n = 3 THEN '2026-10-16T10:00Z'::timestamptz ELSE '2026-09-01Z' END"
        " FROM tenants t, generate_series(1, 3) n")
    await conn.execute(
        "INSERT INTO tax_jurisdictions (id, partner_id, name, code, rate)"
        " SELECT 'tax_' || id, id, 'Pulaski County', 'US-AR-Pulaski', 8.5 FROM partners")
    await conn.execute("INSERT INTO tenant_tax (tenant_id, jurisdiction_id) SELECT id, 'tax_' || partner_id"
                       " FROM tenants WHERE right(id, 1)::int % 2 = 1")
    await conn.execute(
        "INSERT INTO call_records (id, linkedid, tenant_id, partner_id, direction, caller, callee, started_at,"
        " answered_at, ended_at, duration_s, answered_s, billable_s, wholesale_billable_s, disposition,"
        " hangup_cause, call_class)"
        " SELECT 'cr' || g, 'l' || g, 'ten_b' || lpad((g % $2)::text, 6, '0'),"
        "  'ptr_b' || lpad(((g % $2) % $3)::text, 3, '0'), 'outbound', '101', '+15015550100', s, s, s + interval '1 min',"
        "  60, 60, 6 * (1 + g % 100), 6 * (1 + g % 100), 'ANSWERED', 16,"
        "  (ARRAY['toll_free', 'international', 'local', 'local', 'local', 'local', 'local', 'local', 'local',"
        "   'internal'])[1 + g % 10]"
        " FROM generate_series(0, $1 - 1) g, LATERAL (SELECT $4::timestamptz + (g % 2678000) * interval '1 second') AS x(s)",
        calls, tenants, PARTNERS, START)
    # What the call recorder wrote beside each record, in the same transaction: the call added to
    # its period's usage counter (every bench tenant's period is October: UTC, anchor day 1).
    await conn.execute(
        "INSERT INTO tenant_usage (tenant_id, cycle_start, call_class, calls, answered_s, billable_s)"
        " SELECT tenant_id, $1::date, call_class, count(*), sum(answered_s), sum(billable_s) FROM call_records"
        " WHERE started_at >= $2 AND started_at < $3 GROUP BY tenant_id, call_class", START.date(), START, END)
    await conn.execute("ANALYZE")


async def invoiced_minutes_match(pool: asyncpg.Pool, aggregate: list[asyncpg.Record]) -> int:
    """Tenants whose invoice bills (included and over) exactly the billable seconds of their call
    records in the period, as the bare aggregate sums them (none: no minute lines): the job reads the usage counters, so
    this is the check that they hold what the records hold."""
    records: dict[str, int] = {}
    for tenant_id, _, seconds in aggregate:
        records[tenant_id] = records.get(tenant_id, 0) + int(seconds)
    rows = await pool.fetch(
        "SELECT i.tenant_id, sum((l ->> 'quantity')::numeric * 60) AS seconds FROM tenant_invoices i,"
        " jsonb_array_elements(i.lines) l WHERE l ->> 'kind' LIKE 'minutes%' GROUP BY i.tenant_id")
    invoiced = {r["tenant_id"]: r["seconds"] for r in rows}
    tenants = [r["tenant_id"] for r in await pool.fetch("SELECT tenant_id FROM tenant_invoices")]
    return sum(1 for t in tenants if invoiced.get(t, 0) == records.get(t, 0))


async def bench(dsn: str, tenants: int, calls: int, rounds: int) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    assert pool is not None
    try:
        started = time.perf_counter()
        async with pool.acquire() as conn:
            await seed(conn, tenants, calls)
        in_period = await pool.fetchval("SELECT count(*) FROM call_records WHERE started_at >= $1 AND started_at < $2",
                                        START, END)
        print(f"seeded {tenants} tenants, {in_period} call records in the period in {time.perf_counter() - started:.1f} s")
        aggregate: list[float] = []
        job: list[float] = []
        made = matched = 0
        for n in range(rounds):
            await pool.execute("DELETE FROM tenant_invoices; DELETE FROM invoice_numbering;"
                               " DELETE FROM events WHERE type = 'invoice.created'")
            t0 = time.perf_counter()
            rows = await pool.fetch(AGGREGATE, START, END, ["local", "toll_free", "international"])
            aggregate.append(time.perf_counter() - t0)
            report = await run_invoices(pool, RUN_AT, lookup=terms.last_cycles)
            job.append(report.seconds)
            made = int(await pool.fetchval("SELECT count(DISTINCT tenant_id) FROM tenant_invoices"))
            total = int(await pool.fetchval("SELECT count(*) FROM tenant_invoices"))
            print(f"round {n + 1}: aggregate {aggregate[-1]:.3f} s ({len(rows)} rows), job {job[-1]:.3f} s"
                  f" (reading {report.read_seconds:.3f} s, composing and writing"
                  f" {report.seconds - report.read_seconds:.3f} s; {report.invoiced} invoices,"
                  f" {report.errors[:1] or 'no errors'})")
            matched = await invoiced_minutes_match(pool, rows)
            if made != total or report.errors:
                VERDICTS.broken("job", f"{total} invoices for {made} tenants; errors {report.errors[:1]}")
                return
        again = await run_invoices(pool, RUN_AT, lookup=terms.last_cycles)
        sample = await pool.fetchrow("SELECT subtotal_micros, tax_micros, total_micros FROM tenant_invoices"
                                     " WHERE tenant_id = 'ten_b000001'")
        print(f"a run with every invoice made: {again.seconds:.3f} s, {again.invoiced} new; ten_b000001: {dict(sample or {})}")
    finally:
        await pool.close()
    agg, gen = statistics.median(aggregate), statistics.median(job)
    VERDICTS.info("bare aggregate query (baseline)", agg, "s")
    VERDICTS.info("invoice job", gen, "s")
    VERDICTS.info("invoices/s", tenants / gen, "/s")
    VERDICTS.at_most("job / aggregate", gen / agg, 3.0, "x")
    VERDICTS.exactly("tenants with exactly one invoice", made, tenants)
    VERDICTS.exactly("tenants invoiced for exactly their records' seconds", matched, tenants)
    VERDICTS.exactly("invoices made by a second run", again.invoiced, 0)


async def main(tenants: int, calls: int, rounds: int) -> int:
    async with scratch_database("bench-invoices-") as dsn:
        await bench(dsn, tenants, calls, rounds)
    return VERDICTS.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.tenants, args.calls, args.rounds)))
