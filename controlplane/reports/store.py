"""SQL of the reports: reads of invoices, payments, credit notes, tenants and the daily rollup
(migration 0023, kept by triggers), grouped by the partner's local day so that every window is
summed by the pure figures; the partner's time zone. Reads only, but for ``set_timezone``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from controlplane.db.connection import Connection, Executor
from controlplane.reports.models import CashDay, DailyUsage, InvoiceGroup, TenantMoney, TenantRow
from controlplane.reports.periods import whole_months

UNPAID = ("SENT", "PARTIALLY_PAID", "OVERDUE")


@dataclass(frozen=True)
class PartnerInfo:
    id: str
    name: str
    tier: str
    status: str
    trial_ends_at: datetime | None
    timezone: str
    wallet_balance_micros: int


async def partner(conn: Executor, partner_id: str) -> PartnerInfo | None:
    rows = await partners(conn, [partner_id])
    return rows[0] if rows else None


async def partners(conn: Executor, ids: Sequence[str] | None = None) -> list[PartnerInfo]:
    rows = await conn.fetch(
        "SELECT p.id, p.name, p.tier, p.status, p.trial_ends_at, p.timezone, coalesce(w.balance, 0) AS balance"
        " FROM partners p LEFT JOIN partner_wallets w ON w.partner_id = p.id"
        " WHERE $1::text[] IS NULL OR p.id = ANY($1::text[]) ORDER BY p.id", None if ids is None else list(ids))
    return [PartnerInfo(r["id"], r["name"], r["tier"], r["status"], r["trial_ends_at"], r["timezone"],
                        int(r["balance"])) for r in rows]


async def set_timezone(conn: Connection, partner_id: str, timezone: str) -> bool:
    """Set the zone; a change rebuilds the partner's rollup (its days move) in the same transaction."""
    changed = await conn.fetchval(
        "UPDATE partners SET timezone = $2 WHERE id = $1 AND timezone <> $2 RETURNING true", partner_id, timezone)
    if changed:
        await conn.execute("SELECT report_rollups_rebuild($1)", partner_id)
    return bool(changed)


_SIGNED = "CASE p.kind WHEN 'payment' THEN p.amount_micros ELSE -p.amount_micros END"


async def cash_days(conn: Executor, partner_id: str, timezone: str) -> list[CashDay]:
    rows = await conn.fetch(
        "SELECT (p.created_at AT TIME ZONE $2)::date AS day,"
        " coalesce(sum(p.amount_micros) FILTER (WHERE p.kind = 'payment'), 0) AS paid,"
        " coalesce(sum(p.amount_micros) FILTER (WHERE p.kind = 'refund'), 0) AS refunded"
        " FROM tenant_invoices i JOIN tenant_invoice_payments p ON p.invoice_id = i.id"
        " WHERE i.partner_id = $1 GROUP BY 1", partner_id, timezone)
    return [CashDay(r["day"], int(r["paid"]), int(r["refunded"])) for r in rows]


async def invoice_groups(conn: Executor, partner_id: str, timezone: str, since: datetime,
                         until: datetime) -> list[InvoiceGroup]:
    """Invoices issued in [since, until) (not DRAFT, not VOID) by local issue day, local due day,
    cancelled, paid on time."""
    # One hash join of the window's invoices with their payments (not a lookup per invoice).
    rows = await conn.fetch(
        """SELECT (x.issued_at AT TIME ZONE $2)::date AS issued_day, (x.due_at AT TIME ZONE $2)::date AS due_day,
                  x.status = 'CANCELLED' AS cancelled, x.by_due >= x.total_micros AS on_time, count(*) AS n,
                  sum(x.subtotal_micros) AS subtotal, sum(x.tax_micros) AS tax, sum(x.total_micros) AS total
             FROM (SELECT i.id, i.issued_at, i.due_at, i.status, i.subtotal_micros, i.tax_micros, i.total_micros,
                          coalesce(sum(p.amount_micros) FILTER (WHERE p.kind = 'payment' AND p.created_at <= i.due_at),
                                   0) AS by_due
                     FROM tenant_invoices i LEFT JOIN tenant_invoice_payments p ON p.invoice_id = i.id
                    WHERE i.partner_id = $1 AND i.issued_at >= $3 AND i.issued_at < $4
                      AND i.status NOT IN ('DRAFT', 'VOID')
                    GROUP BY i.id) x
            GROUP BY 1, 2, 3, 4""", partner_id, timezone, since, until)
    return [InvoiceGroup(r["issued_day"], r["due_day"], r["cancelled"], r["on_time"], int(r["n"]),
                         int(r["subtotal"]), int(r["tax"]), int(r["total"])) for r in rows]


async def line_totals(conn: Executor, partner_id: str, since: datetime, until: datetime) -> dict[str, int]:
    """Line kind -> amount over the invoices issued in [since, until), cancelled ones left out."""
    rows = await conn.fetch(
        "SELECT l.kind, sum(l.amount_micros) AS amount"
        " FROM tenant_invoices i, jsonb_to_recordset(i.lines) AS l(kind text, amount_micros bigint)"
        " WHERE i.partner_id = $1 AND i.issued_at >= $2 AND i.issued_at < $3"
        " AND i.status NOT IN ('DRAFT', 'VOID', 'CANCELLED') GROUP BY 1", partner_id, since, until)
    return {r["kind"]: int(r["amount"]) for r in rows}


async def paid_days(conn: Executor, partner_id: str, timezone: str) -> list[tuple[date, int]]:
    """PAID invoices by the local day of their last payment."""
    rows = await conn.fetch(
        "SELECT (m.at AT TIME ZONE $2)::date AS day, count(*) AS n FROM ("
        "  SELECT max(p.created_at) AS at FROM tenant_invoices i"
        "  JOIN tenant_invoice_payments p ON p.invoice_id = i.id AND p.kind = 'payment'"
        "  WHERE i.partner_id = $1 AND i.status = 'PAID' GROUP BY i.id) m GROUP BY 1", partner_id, timezone)
    return [(r["day"], int(r["n"])) for r in rows]


async def tenants(conn: Executor, partner_id: str, instants: Sequence[datetime]) -> list[TenantRow]:
    """Every tenant of the partner with, for each instant, the profile assigned just before it."""
    rows = await conn.fetch(
        """SELECT t.id, t.name, t.sip_prefix, t.status, t.created_at, t.cancelled_at,
                  array_agg(coalesce(b.base_fee_micros, 0) ORDER BY w.i) AS fees, array_agg(b.name ORDER BY w.i) AS names
             FROM tenants t LEFT JOIN LATERAL unnest($2::timestamptz[]) WITH ORDINALITY AS w(at, i) ON true
             LEFT JOIN LATERAL (SELECT a.profile_id FROM tenant_profile_assignments a
                                 WHERE a.tenant_id = t.id AND a.effective_from < w.at
                                 ORDER BY a.effective_from DESC LIMIT 1) a ON true
             LEFT JOIN billing_profiles b ON b.id = a.profile_id
            WHERE t.partner_id = $1 GROUP BY t.id ORDER BY t.id""", partner_id, list(instants))
    return [TenantRow(r["id"], r["name"], r["sip_prefix"], r["status"], r["created_at"], r["cancelled_at"],
                      tuple(int(f) for f in r["fees"]), tuple(r["names"])) for r in rows]


async def outstanding(conn: Executor, partner_id: str) -> int:
    value = await conn.fetchval(
        "SELECT coalesce(sum(greatest(total_micros - paid_micros, 0)), 0) FROM tenant_invoices"
        " WHERE partner_id = $1 AND status = ANY($2::text[])", partner_id, list(UNPAID))
    return int(value)


async def tenant_money(conn: Executor, partner_id: str, start: datetime, end: datetime) -> dict[str, TenantMoney]:
    """Per tenant: cash collected before ``end`` and within [start, end), outstanding now, last payment."""
    cash = await conn.fetch(
        f"""SELECT i.tenant_id, coalesce(sum({_SIGNED}) FILTER (WHERE p.created_at < $3), 0) AS lifetime,
                   coalesce(sum({_SIGNED}) FILTER (WHERE p.created_at >= $2 AND p.created_at < $3), 0) AS period,
                   max(p.created_at) FILTER (WHERE p.kind = 'payment') AS last_at
              FROM tenant_invoices i JOIN tenant_invoice_payments p ON p.invoice_id = i.id
             WHERE i.partner_id = $1 GROUP BY 1""", partner_id, start, end)
    owed = await conn.fetch(
        "SELECT tenant_id, sum(greatest(total_micros - paid_micros, 0)) AS owed FROM tenant_invoices"
        " WHERE partner_id = $1 AND status = ANY($2::text[]) GROUP BY 1", partner_id, list(UNPAID))
    owed_by = {r["tenant_id"]: int(r["owed"]) for r in owed}
    out = {r["tenant_id"]: TenantMoney(r["tenant_id"], int(r["lifetime"]), int(r["period"]),
                                       owed_by.get(r["tenant_id"], 0), r["last_at"]) for r in cash}
    for tenant_id, value in owed_by.items():
        out.setdefault(tenant_id, TenantMoney(tenant_id, 0, 0, value, None))
    return out


_USAGE_COLUMNS = ("calls, local_s, toll_free_s, international_s, other_s, local_retail_micros,"
                  " toll_free_retail_micros, international_retail_micros, cost_micros")


async def daily_usage(conn: Executor, partner_id: str, first: date, last: date) -> list[DailyUsage]:
    """The rollup over local days first..last per tenant: whole months from report_monthly, the
    days of partial months from report_daily."""
    months = whole_months(first, last)
    rows = await conn.fetch(
        f"SELECT tenant_id, sum(calls) AS calls, sum(local_s) AS l, sum(toll_free_s) AS t,"
        f" sum(international_s) AS i, sum(other_s) AS o, sum(local_retail_micros) AS lr,"
        f" sum(toll_free_retail_micros) AS tr, sum(international_retail_micros) AS ir, sum(cost_micros) AS cost"
        f" FROM (SELECT tenant_id, {_USAGE_COLUMNS} FROM report_monthly"
        f"       WHERE partner_id = $1 AND month >= $4 AND month < $5"
        f"       UNION ALL SELECT tenant_id, {_USAGE_COLUMNS} FROM report_daily"
        f"       WHERE partner_id = $1 AND day >= $2 AND day < $4"
        f"       UNION ALL SELECT tenant_id, {_USAGE_COLUMNS} FROM report_daily"
        f"       WHERE partner_id = $1 AND day >= $5 AND day <= $3) x GROUP BY tenant_id",
        partner_id, first, last, months[0], months[1])
    return [DailyUsage(r["tenant_id"], int(r["calls"]), int(r["l"]), int(r["t"]), int(r["i"]), int(r["o"]),
                       int(r["lr"]), int(r["tr"]), int(r["ir"]), int(r["cost"])) for r in rows]


async def billable_windows(conn: Executor, partner_id: str, recent: tuple[date, date],
                           prior: tuple[date, date]) -> dict[str, tuple[int, int]]:
    """tenant -> (billable seconds in the recent days, in the prior days), billed classes only."""
    rows = await conn.fetch(
        "SELECT tenant_id,"
        " coalesce(sum(local_s + toll_free_s + international_s) FILTER (WHERE day BETWEEN $2 AND $3), 0) AS recent,"
        " coalesce(sum(local_s + toll_free_s + international_s) FILTER (WHERE day BETWEEN $4 AND $5), 0) AS prior"
        " FROM report_daily WHERE partner_id = $1 AND day BETWEEN $4 AND $3 AND tenant_id <> '' GROUP BY 1",
        partner_id, recent[0], recent[1], prior[0], prior[1])
    return {r["tenant_id"]: (int(r["recent"]), int(r["prior"])) for r in rows}


async def overdue(conn: Executor, partner_id: str) -> dict[str, tuple[int, int]]:
    """tenant -> (OVERDUE invoices, what they still owe)."""
    rows = await conn.fetch(
        "SELECT tenant_id, count(*) AS n, sum(greatest(total_micros - paid_micros, 0)) AS owed"
        " FROM tenant_invoices WHERE partner_id = $1 AND status = 'OVERDUE' GROUP BY 1", partner_id)
    return {r["tenant_id"]: (int(r["n"]), int(r["owed"])) for r in rows}


async def units(conn: Executor, partner_id: str, at: datetime) -> dict[str, int]:
    """Extensions and DIDs held by the partner's tenants just before ``at`` (unit history)."""
    rows = await conn.fetch(
        "SELECT u.unit_kind, count(*) AS n FROM tenants t JOIN unit_history u ON u.tenant_id = t.id"
        " WHERE t.partner_id = $1 AND u.started_at < $2 AND (u.ended_at IS NULL OR u.ended_at >= $2)"
        " GROUP BY 1", partner_id, at)
    names = {"extension": "extensions", "did_local": "dids_local", "did_toll_free": "dids_toll_free"}
    return {names[r["unit_kind"]]: int(r["n"]) for r in rows}


async def invoiced_net(conn: Executor, partner_id: str, start: datetime, end: datetime) -> dict[str, int]:
    """tenant -> subtotals (net of tax) of its invoices issued in [start, end), not cancelled."""
    rows = await conn.fetch(
        "SELECT tenant_id, sum(subtotal_micros) AS net FROM tenant_invoices WHERE partner_id = $1"
        " AND issued_at >= $2 AND issued_at < $3 AND status NOT IN ('DRAFT', 'VOID', 'CANCELLED') GROUP BY 1",
        partner_id, start, end)
    return {r["tenant_id"]: int(r["net"]) for r in rows}


async def credit_notes(conn: Executor, partner_id: str, start: datetime,
                       end: datetime) -> list[tuple[str, int, int, int]]:
    """(tenant, amount, its invoice's tax, its invoice's total) of credit notes issued in [start, end)."""
    rows = await conn.fetch(
        "SELECT c.tenant_id, c.amount_micros, i.tax_micros, i.total_micros FROM credit_notes c"
        " JOIN tenant_invoices i ON i.id = c.invoice_id WHERE c.partner_id = $1 AND c.status = 'SUCCEEDED'"
        " AND c.issued_at >= $2 AND c.issued_at < $3", partner_id, start, end)
    return [(r["tenant_id"], int(r["amount_micros"]), int(r["tax_micros"]), int(r["total_micros"])) for r in rows]


async def platform_costs(conn: Executor, windows: Sequence[tuple[str, date, date]]) -> dict[str, int]:
    """partner -> wallet debits of cost kinds over its own local day window (whole months from
    report_monthly, the other days from report_daily)."""
    months = [whole_months(first, last) for _, first, last in windows]
    # LATERAL: one index range scan per partner and part (a join would scan the whole rollup)
    rows = await conn.fetch(
        "SELECT w.p, coalesce(m.c, 0) + coalesce(a.c, 0) + coalesce(b.c, 0) AS cost"
        " FROM unnest($1::text[], $2::date[], $3::date[], $4::date[], $5::date[]) AS w(p, f, l, mf, mt)"
        " CROSS JOIN LATERAL (SELECT sum(cost_micros) AS c FROM report_monthly"
        "  WHERE partner_id = w.p AND month >= w.mf AND month < w.mt) m"
        " CROSS JOIN LATERAL (SELECT sum(cost_micros) AS c FROM report_daily"
        "  WHERE partner_id = w.p AND day >= w.f AND day < w.mf) a"
        " CROSS JOIN LATERAL (SELECT sum(cost_micros) AS c FROM report_daily"
        "  WHERE partner_id = w.p AND day >= w.mt AND day <= w.l) b",
        [w[0] for w in windows], [w[1] for w in windows], [w[2] for w in windows], [m[0] for m in months],
        [m[1] for m in months])
    return {r["p"]: int(r["cost"]) for r in rows}


async def platform_cash(conn: Executor, windows: Sequence[tuple[str, datetime, datetime]]) -> dict[str, int]:
    """partner -> payments less refunds from its tenants within its own window."""
    rows = await conn.fetch(
        f"SELECT i.partner_id, sum({_SIGNED}) AS cash"
        " FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS w(p, s, e)"
        " JOIN tenant_invoices i ON i.partner_id = w.p JOIN tenant_invoice_payments p ON p.invoice_id = i.id"
        " WHERE p.created_at >= w.s AND p.created_at < w.e GROUP BY 1",
        [w[0] for w in windows], [w[1] for w in windows], [w[2] for w in windows])
    return {r["partner_id"]: int(r["cash"]) for r in rows}


async def platform_mrr(conn: Executor, at: datetime) -> dict[str, tuple[int, int]]:
    """partner -> (MRR, active tenants) just before ``at`` (the same rule as the partner's view)."""
    rows = await conn.fetch(
        """SELECT t.partner_id, coalesce(sum(b.base_fee_micros), 0) AS mrr, count(*) AS active
             FROM tenants t
             LEFT JOIN LATERAL (SELECT a.profile_id FROM tenant_profile_assignments a
                                 WHERE a.tenant_id = t.id AND a.effective_from < $1
                                 ORDER BY a.effective_from DESC LIMIT 1) a ON true
             LEFT JOIN billing_profiles b ON b.id = a.profile_id
            WHERE t.created_at < $1 AND (t.cancelled_at IS NULL OR t.cancelled_at >= $1)
              AND NOT (t.status = 'CANCELLED' AND t.cancelled_at IS NULL)
            GROUP BY 1""", at)
    return {r["partner_id"]: (int(r["mrr"]), int(r["active"])) for r in rows}


async def monthly_report_queued(conn: Executor, reference: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM mail_outbox WHERE reference = $1", reference))


async def monthly_candidates(conn: Executor) -> list[tuple[str, str]]:
    """(partner, zone) of partners whose "monthly reports" toggle is on (default on, seed 003)."""
    rows = await conn.fetch(
        "SELECT p.id, p.timezone FROM partners p LEFT JOIN partner_brand b ON b.partner_id = p.id"
        " WHERE coalesce(b.notify_monthly_reports, true) ORDER BY p.id")
    return [(r["id"], r["timezone"]) for r in rows]
