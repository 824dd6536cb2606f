"""What an invoice is computed from, read for a batch of tenants at once (one statement per kind
of input, so the job's cost stays near the bare usage aggregate): billable seconds by class,
unit history, pending credits and one-time charges, the tenant's tax jurisdiction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from controlplane.db.connection import Connection, Executor
from controlplane.invoices.models import ClassSeconds, LineKind, Tax, UnitKind, UnitSpan

# The call classes that are billed as minutes (internal and emergency calls never are).
BILLED_CLASSES = ("local", "toll_free", "international")


@dataclass(frozen=True)
class TenantRow:
    tenant_id: str
    partner_id: str
    timezone: str
    created_at: datetime


@dataclass(frozen=True)
class Window:
    tenant_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class PendingItem:
    item_id: int
    tenant_id: str
    kind: LineKind
    description: str
    amount_micros: int


async def tenants_after(conn: Executor, after: str, limit: int) -> list[TenantRow]:
    """Tenants that are invoiced (not CANCELLED: invoices stop there), in id order."""
    rows = await conn.fetch("SELECT id, partner_id, timezone, created_at FROM tenants WHERE id > $1"
                            " AND status <> 'CANCELLED' ORDER BY id LIMIT $2", after, limit)
    return [TenantRow(r["id"], r["partner_id"], r["timezone"], r["created_at"]) for r in rows]


async def tenant_row(conn: Executor, tenant_id: str) -> TenantRow | None:
    r = await conn.fetchrow("SELECT id, partner_id, timezone, created_at FROM tenants WHERE id = $1", tenant_id)
    return None if r is None else TenantRow(r["id"], r["partner_id"], r["timezone"], r["created_at"])


async def load_windows(conn: Connection, windows: Sequence[Window]) -> None:
    """The windows as a temporary table, analysed, for the joins below (inside the caller's
    transaction: it is dropped at commit). With real row counts the planner joins call_records
    by hash in one scan, as the bare aggregate does, instead of an index probe per tenant."""
    await conn.execute("CREATE TEMPORARY TABLE invoice_windows (tenant_id text PRIMARY KEY, start timestamptz,"
                       " finish timestamptz) ON COMMIT DROP")
    await conn.copy_records_to_table("invoice_windows", records=[(w.tenant_id, w.start, w.end) for w in windows],
                                     columns=["tenant_id", "start", "finish"])
    await conn.execute("ANALYZE invoice_windows")


async def invoiced(conn: Executor) -> set[str]:
    """Tenants of the loaded windows whose cycle invoice for that period exists already."""
    rows = await conn.fetch("SELECT w.tenant_id FROM invoice_windows w JOIN tenant_invoices i"
                            " ON i.tenant_id = w.tenant_id AND i.period_start = w.start AND NOT i.off_cycle")
    return {r["tenant_id"] for r in rows}


# Up to this many distinct periods in a chunk, usage is read per period with the bare aggregate's
# shape (a parallel scan of the period's records); beyond, in one hash join over every window.
PER_PERIOD_SCANS = 4


async def seconds_by_class(conn: Executor, windows: Sequence[Window]) -> dict[str, list[ClassSeconds]]:
    """Billable seconds per tenant and class of the calls that started in the tenant's window.

    Tenants of one chunk mostly share a period (PAYG: the calendar month; Flat: the anniversary
    day), so each distinct period is read like the bare aggregate reads it, restricted to its
    tenants. Many distinct periods (Flat tenants spread over the month) would mean as many scans:
    then one join of the records with the loaded windows (``load_windows``) reads them once."""
    by_period: dict[tuple[datetime, datetime], list[str]] = {}
    for w in windows:
        by_period.setdefault((w.start, w.end), []).append(w.tenant_id)
    classes = list(BILLED_CLASSES)
    rows: list[asyncpg.Record] = []
    if len(by_period) <= PER_PERIOD_SCANS:
        for (start, end), tenants in by_period.items():
            rows += await conn.fetch(
                "SELECT tenant_id, call_class, sum(billable_s)::bigint AS seconds FROM call_records"
                " WHERE started_at >= $1 AND started_at < $2 AND call_class = ANY($3::text[])"
                " AND tenant_id = ANY($4::text[]) GROUP BY tenant_id, call_class", start, end, classes, tenants)
    else:
        lo, hi = min(w.start for w in windows), max(w.end for w in windows)
        rows = await conn.fetch(
            "SELECT w.tenant_id, c.call_class, sum(c.billable_s)::bigint AS seconds FROM invoice_windows w"
            " JOIN call_records c ON c.tenant_id = w.tenant_id AND c.started_at >= w.start AND c.started_at < w.finish"
            " WHERE c.call_class = ANY($1::text[]) AND c.started_at >= $2 AND c.started_at < $3"
            " GROUP BY w.tenant_id, c.call_class", classes, lo, hi)
    out: dict[str, list[ClassSeconds]] = {}
    for r in rows:
        out.setdefault(r["tenant_id"], []).append(ClassSeconds(r["call_class"], int(r["seconds"])))
    return out


_KINDS = {k.value: k for k in UnitKind}


async def spans(conn: Executor) -> dict[str, list[UnitSpan]]:
    """The unit history overlapping each tenant's window, clipped to it and grouped: units present
    over the same stretch (most often the whole period) come as one span with their count."""
    rows = await conn.fetch(
        "SELECT h.tenant_id, h.unit_kind, min(h.unit_id) AS unit_id, count(*)::int AS n,"
        "  GREATEST(h.started_at, w.start) AS lo, LEAST(COALESCE(h.ended_at, w.finish), w.finish) AS hi"
        " FROM invoice_windows w JOIN unit_history h ON h.tenant_id = w.tenant_id AND h.started_at < w.finish"
        "  AND (h.ended_at IS NULL OR h.ended_at > w.start) GROUP BY 1, 2, 5, 6")
    out: dict[str, list[UnitSpan]] = {}
    for r in rows:
        out.setdefault(r["tenant_id"], []).append(
            UnitSpan(_KINDS[r["unit_kind"]], r["unit_id"], r["lo"], r["hi"], r["n"]))
    return out


async def pending_items(conn: Executor, tenant_ids: Sequence[str]) -> dict[str, list[PendingItem]]:
    rows = await conn.fetch("SELECT id, tenant_id, kind, description, amount_micros FROM tenant_invoice_items"
                            " WHERE tenant_id = ANY($1::text[]) AND invoice_id IS NULL ORDER BY id",
                            list(tenant_ids))
    out: dict[str, list[PendingItem]] = {}
    for r in rows:
        out.setdefault(r["tenant_id"], []).append(
            PendingItem(r["id"], r["tenant_id"], LineKind(r["kind"]), r["description"], r["amount_micros"]))
    return out


async def taxes(conn: Executor, tenant_ids: Sequence[str]) -> dict[str, Tax]:
    """Each tenant's enabled jurisdiction, as of now (copied onto the invoice)."""
    rows = await conn.fetch(
        "SELECT t.tenant_id, j.name, j.code, j.rate::text AS rate FROM tenant_tax t"
        " JOIN tax_jurisdictions j ON j.id = t.jurisdiction_id"
        " WHERE t.tenant_id = ANY($1::text[]) AND j.enabled", list(tenant_ids))
    return {r["tenant_id"]: Tax(r["name"], r["code"], r["rate"]) for r in rows}


class ItemsTaken(RuntimeError):
    """Another invoice consumed a pending item first: the batch is retried by the next run."""


async def consume(conn: Connection, partner_id: str, tenant_id: str, invoice_id: str,
                  items: Sequence[PendingItem], credit_left_micros: int) -> None:
    """Mark the items as on ``invoice_id``; a credit larger than the invoice leaves its rest pending."""
    if not items:
        return
    ids = [i.item_id for i in items]
    taken = await conn.fetch("UPDATE tenant_invoice_items SET invoice_id = $1 WHERE id = ANY($2::bigint[])"
                             " AND invoice_id IS NULL RETURNING id", invoice_id, ids)
    if len(taken) != len(ids):
        raise ItemsTaken(invoice_id)
    if credit_left_micros > 0:
        await conn.execute(
            "INSERT INTO tenant_invoice_items (partner_id, tenant_id, kind, description, amount_micros, reference)"
            " VALUES ($1, $2, 'credit', 'Credit carried over', $3, $4)", partner_id, tenant_id, credit_left_micros,
            f"carry:{invoice_id}")
