"""Reports over 1,000 tenants and 5,000,000 call records: each report's p99 against a plain
aggregate over the raw rows (the baseline) in the same run, and the same figures from both.

Run: .venv/bin/python bench/bench_reports.py [--tenants 1000] [--calls 5000000] [--rounds 40]
An embedded PostgreSQL, migrated. 4 partners (the measured one, in America/New_York, holds 70 %
of the tenants), tenants created over 24 months (10 % cancelled), a monthly invoice per tenant
with its payment (85 % paid), the call records spread over the 24 months with a wallet usage
entry each (the ledger margin reads), all written by server-side INSERT ... SELECT
generate_series in batches, through the rollup triggers of migration 0023 (logged tables: the
build is what a busy platform's writes cost). Each report is timed through ReportServices (the
HTTP handlers' only work beside encoding), ``--rounds`` times after a warm-up; target p99 < 200
ms. The baselines: the same usage, churn-window and cost figures by GROUP BY over call_records
and wallet_entries, checked equal to the reports' figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import asyncpg  # noqa: E402
from scratch_db import scratch_database  # noqa: E402
from verdict import Verdicts, percentile  # noqa: E402

from controlplane.db.connection import Connection  # noqa: E402
from controlplane.reports.periods import churn_windows, local_day, midnight, resolve, zone  # noqa: E402
from controlplane.reports.services import ReportServices  # noqa: E402

VERDICTS = Verdicts("bench_reports")
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
START = datetime(2024, 11, 1, tzinfo=UTC)
SPAN_S = 750 * 86400  # to NOW
PARTNER = "ptr_b0"
ZONE = "America/New_York"
TARGET_MS = 200.0
BATCH = 500_000


def partner_of(expr: str, tenants: int) -> str:
    big = int(tenants * 0.7)
    return (f"CASE WHEN {expr} < {big} THEN 'ptr_b0' ELSE 'ptr_b' || (1 + ({expr} - {big}) % 3)::text END")


async def seed(conn: Connection, tenants: int, calls: int) -> None:
    await conn.execute(
        "INSERT INTO partners (id, name, tier, status, activated_at, created_at, timezone)"
        " SELECT 'ptr_b' || p, 'Reseller ' || p, (ARRAY['BUSINESS', 'STARTER', 'PROFESSIONAL', 'BUSINESS'])[p + 1],"
        " 'ACTIVE', '2024-10-01Z', '2024-10-01Z', CASE p WHEN 0 THEN $1 ELSE 'UTC' END FROM generate_series(0, 3) p",
        ZONE)
    await conn.execute("SELECT billing_profiles_create_defaults(id) FROM partners")
    await conn.execute("INSERT INTO partner_wallets (partner_id, balance) SELECT id, 1000000000 FROM partners")
    await conn.execute(
        f"INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status, created_at, cancelled_at)"
        f" SELECT 'ten_b' || lpad(i::text, 5, '0'), {partner_of('i', tenants)}, 'Tenant ' || i,"
        f"  'b' || lpad(i::text, 5, '0'), 'billing@example.com',"
        f"  CASE WHEN i % 10 = 0 THEN 'CANCELLED' ELSE 'ACTIVE' END, c, CASE WHEN i % 10 = 0 THEN c + interval '200 days' END"
        f" FROM generate_series(0, $1 - 1) i, LATERAL (SELECT $2::timestamptz + ((i * 7919) % 700) * interval '1 day'"
        f"   + (i % 24) * interval '1 hour') x(c)", tenants, START)
    await conn.execute("UPDATE tenants SET status = 'ACTIVE', cancelled_at = NULL WHERE cancelled_at > $1", NOW)
    await conn.execute(
        "INSERT INTO tenant_profile_assignments (tenant_id, effective_from, profile_id)"
        " SELECT t.id, t.created_at, b.id FROM tenants t JOIN billing_profiles b ON b.partner_id = t.partner_id"
        "  AND b.builtin = CASE WHEN right(t.id, 1)::int % 2 = 0 THEN 'flat' ELSE 'payg' END"
        " ON CONFLICT (tenant_id, effective_from) DO UPDATE SET profile_id = EXCLUDED.profile_id")
    await conn.execute(
        "INSERT INTO tenant_invoices (id, partner_id, tenant_id, number, status, period_start, period_end, issued_at,"
        " due_at, currency, subtotal_micros, tax_micros, total_micros, paid_micros, lines)"
        " SELECT 'inv_' || t.id || '_' || m, t.partner_id, t.id, 'N-' || t.id || '-' || m,"
        "  CASE WHEN (hashtext(t.id) + m) % 20 < 17 THEN 'PAID' ELSE 'OVERDUE' END, ps, ps + interval '1 month',"
        "  ps + interval '1 month 2 hours', ps + interval '1 month 2 hours' + interval '15 days', 'USD',"
        "  144060000, 12250000, 156310000,"
        "  CASE WHEN (hashtext(t.id) + m) % 20 < 17 THEN 156310000 ELSE 0 END,"
        "  jsonb_build_array(jsonb_build_object('kind', 'base_fee', 'description', 'b', 'quantity', '1',"
        "    'unit_micros', 99000000, 'amount_micros', 99000000),"
        "   jsonb_build_object('kind', 'extensions', 'description', 'e', 'quantity', '2', 'unit_micros', 20000000,"
        "    'amount_micros', 40000000),"
        "   jsonb_build_object('kind', 'dids_local', 'description', 'd', 'quantity', '1', 'unit_micros', 2060000,"
        "    'amount_micros', 2060000),"
        "   jsonb_build_object('kind', 'minutes_local', 'description', 'm', 'quantity', '120', 'unit_micros', 25000,"
        "    'amount_micros', 3000000))"
        " FROM tenants t, generate_series(0, 24) m, LATERAL (SELECT $1::timestamptz + m * interval '1 month') x(ps)"
        " WHERE ps >= date_trunc('month', t.created_at) AND ps + interval '1 month 2 hours' < $2"
        "  AND (t.cancelled_at IS NULL OR ps < t.cancelled_at)", START, NOW)
    await conn.execute(
        "INSERT INTO tenant_invoice_payments (invoice_id, kind, reference, amount_micros, created_at)"
        " SELECT id, 'payment', 'pay:' || id, total_micros, issued_at + (abs(hashtext(id)) % 20) * interval '1 day'"
        " FROM tenant_invoices WHERE status = 'PAID'")
    for first in range(0, calls, BATCH):
        last = min(calls, first + BATCH) - 1
        await conn.execute(
            f"INSERT INTO call_records (id, linkedid, tenant_id, partner_id, direction, caller, callee, started_at,"
            f" answered_at, ended_at, duration_s, answered_s, billable_s, wholesale_billable_s, disposition,"
            f" hangup_cause, call_class, wholesale_micros, retail_micros)"
            f" SELECT 'cr' || g, 'l' || g, 'ten_b' || lpad((g % $3)::text, 5, '0'), {partner_of('g % $3', tenants)},"
            f"  'outbound', '101', '+15015550100', s, s, s + interval '1 min', 60, 60, b, b, 'ANSWERED', 16, c,"
            f"  CASE WHEN c = 'internal' THEN 0 ELSE b * 150 END, CASE WHEN c = 'internal' THEN 0 ELSE b * 417 END"
            f" FROM generate_series($1::bigint, $2::bigint) g,"
            f" LATERAL (SELECT $4::timestamptz + ((g * 104729) % {SPAN_S}) * interval '1 second',"
            f"   6 * (1 + g % 100),"
            f"   (ARRAY['local', 'local', 'local', 'local', 'local', 'toll_free', 'international', 'internal'])[1 + g % 8])"
            f"   AS x(s, b, c)", first, last, tenants, START)
        await conn.execute(  # the ledger's usage entry of each of those calls (same formula)
            f"INSERT INTO wallet_entries (partner_id, kind, amount, reference, tenant_id, call_id, created_at)"
            f" SELECT {partner_of('g % $3', tenants)}, 'usage_' || c, -(b * 150), 'call:cr' || g,"
            f"  'ten_b' || lpad((g % $3)::text, 5, '0'), 'cr' || g, s"
            f" FROM generate_series($1::bigint, $2::bigint) g,"
            f" LATERAL (SELECT $4::timestamptz + ((g * 104729) % {SPAN_S}) * interval '1 second',"
            f"   6 * (1 + g % 100),"
            f"   (ARRAY['local', 'local', 'local', 'local', 'local', 'toll_free', 'international', 'internal'])[1 + g % 8])"
            f"   AS x(s, b, c) WHERE c <> 'internal'", first, last, tenants, START)
        print(f"  calls {last + 1:,} / {calls:,}", flush=True)
    await conn.execute("ANALYZE")


async def timed(rounds: int, run: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    result = await run()  # warm-up (and the figures compared)
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples, result


async def bench(dsn: str, tenants: int, calls: int, rounds: int) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    assert pool is not None
    try:
        t0 = time.perf_counter()
        async with pool.acquire() as conn:
            await seed(conn, tenants, calls)
        built = time.perf_counter() - t0
        counts = await pool.fetchrow("SELECT (SELECT count(*) FROM call_records) AS c, (SELECT count(*) FROM"
                                     " wallet_entries) AS w, (SELECT count(*) FROM report_daily) AS d,"
                                     " (SELECT count(*) FROM tenant_invoices) AS i, (SELECT count(*) FROM tenants) AS t")
        assert counts is not None
        print(f"built in {built:.0f} s: {dict(counts)}")
        VERDICTS.info("build (seed through the rollup triggers)", built, "s")
        VERDICTS.info("call records", counts["c"])
        VERDICTS.info("rollup rows (report_daily)", counts["d"])
        s = ReportServices(pool, "USD")
        q30, q1y = {"period": "30d"}, {"period": "1y"}
        reports: dict[str, Callable[[], Awaitable[Any]]] = {
            "revenue 30d": lambda: s.revenue(PARTNER, q30, NOW), "revenue 1y": lambda: s.revenue(PARTNER, q1y, NOW),
            "usage 30d": lambda: s.usage(PARTNER, q30, NOW), "usage 1y": lambda: s.usage(PARTNER, q1y, NOW),
            "trends": lambda: s.trends(PARTNER, None, NOW), "tenants 30d": lambda: s.tenants(PARTNER, q30, NOW),
            "margin 30d": lambda: s.margin(PARTNER, q30, NOW), "margin 1y": lambda: s.margin(PARTNER, q1y, NOW),
            "churn risk": lambda: s.churn_risk(PARTNER, NOW), "platform 30d": lambda: s.platform(q30, NOW)}
        results: dict[str, Any] = {}
        for name, run in reports.items():
            samples, results[name] = await timed(rounds, run)
            print(f"{name}: p50 {statistics.median(samples):.1f} ms, p99 {percentile(samples, 99):.1f} ms")
            VERDICTS.below(f"{name} p99", percentile(samples, 99), TARGET_MS, "ms")
        await baselines(pool, rounds, results)
    finally:
        await pool.close()


async def baselines(pool: asyncpg.Pool, rounds: int, results: dict[str, Any]) -> None:
    """The same figures by a plain GROUP BY over the raw rows; equal figures, p99 beside."""
    tz = zone(ZONE)
    for label, preset in (("30d", "30d"), ("1y", "1y")):
        period = resolve({"period": preset}, ZONE, NOW)
        samples, rows = await timed(rounds, lambda: pool.fetch(
            "SELECT call_class, sum(billable_s) AS s, sum(retail_micros) AS r FROM call_records"
            " WHERE partner_id = $1 AND started_at >= $2 AND started_at < $3 GROUP BY 1", PARTNER, period.start,
            period.end))
        raw = {r["call_class"]: (int(r["s"]), int(r["r"])) for r in rows}
        usage = {x.name.removeprefix("minutes_"): (x.billable_s, x.revenue_micros)
                 for x in results[f"usage {label}"].lines if x.billable_s is not None}
        VERDICTS.exactly(f"usage {label}: report = raw aggregate", int(usage == {k: raw.get(k, (0, 0)) for k in usage}), 1)
        VERDICTS.info(f"baseline raw usage {label} p99", percentile(samples, 99), "ms")
        samples, rows = await timed(rounds, lambda: pool.fetch(
            "SELECT tenant_id, -sum(amount) AS cost FROM wallet_entries WHERE partner_id = $1 AND created_at >= $2"
            " AND created_at < $3 AND kind = ANY(report_cost_kinds()) AND tenant_id IS NOT NULL GROUP BY 1",
            PARTNER, period.start, period.end))
        raw_cost = {r["tenant_id"]: int(r["cost"]) for r in rows}
        got = {t.tenant_id: t.cost_micros for t in results[f"margin {label}"].tenants if t.cost_micros}
        VERDICTS.exactly(f"margin {label}: cost = raw ledger aggregate", int(got == raw_cost), 1)
        VERDICTS.info(f"baseline raw ledger cost {label} p99", percentile(samples, 99), "ms")
    recent, prior = churn_windows(local_day(NOW, tz))
    start, middle = midnight(prior[0], tz), midnight(recent[0], tz)
    end = midnight(recent[1] + timedelta(days=1), tz)
    samples, rows = await timed(rounds, lambda: pool.fetch(
        "SELECT tenant_id, coalesce(sum(billable_s) FILTER (WHERE started_at >= $3), 0) AS recent,"
        " coalesce(sum(billable_s) FILTER (WHERE started_at < $3), 0) AS prior FROM call_records"
        " WHERE partner_id = $1 AND started_at >= $2 AND started_at < $4"
        " AND call_class IN ('local', 'toll_free', 'international') GROUP BY 1", PARTNER, start, middle, end))
    flagged = {r["tenant_id"] for r in rows if r["prior"] > 0 and 2 * r["recent"] < r["prior"]}
    risky = {t.tenant_id for t in results["churn risk"].tenants if any(x.code == "minutes_drop" for x in t.reasons)}
    VERDICTS.exactly("churn risk: minutes drops = raw aggregate", int(flagged == risky), 1)
    VERDICTS.info("baseline raw churn windows p99", percentile(samples, 99), "ms")


async def main(tenants: int, calls: int, rounds: int) -> int:
    try:
        async with scratch_database("bench-reports-") as dsn:
            await bench(dsn, tenants, calls, rounds)
    except Exception as exc:  # noqa: BLE001 - a broken bench says so in its verdicts
        VERDICTS.broken("bench", f"{type(exc).__name__}: {exc}")
    return VERDICTS.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.tenants, args.calls, args.rounds)))
