"""What an invoice is computed from, read for a batch of tenants at once (one statement per kind
of input, so the job's cost stays near the bare usage aggregate): billable seconds by class,
unit history, pending credits and one-time charges, the tenant's tax jurisdiction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import msgspec

from controlplane.db.connection import Connection, Executor
from controlplane.invoices.models import ClassSeconds, LineKind, Tax, UnitKind, UnitSpan

# The call classes that are billed as minutes (internal and emergency calls never are).
BILLED_CLASSES = ("local", "toll_free", "international")


class TenantRow(msgspec.Struct, frozen=True, gc=False):
    tenant_id: str
    partner_id: str
    timezone: str
    created_at: datetime


class Window(msgspec.Struct, frozen=True, gc=False):
    tenant_id: str
    start: datetime
    end: datetime


class PendingItem(msgspec.Struct, frozen=True, gc=False):
    item_id: int
    tenant_id: str
    kind: LineKind
    description: str
    amount_micros: int


async def tenants_after(conn: Executor, after: str, limit: int) -> list[TenantRow]:
    """Tenants that are invoiced (not CANCELLED: invoices stop there), in id order."""
    rows = await conn.fetch("SELECT id, partner_id, timezone, created_at FROM tenants WHERE id > $1"
                            " AND status <> 'CANCELLED' ORDER BY id LIMIT $2", after, limit)
    return [TenantRow(*r) for r in rows]


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


async def invoiced(conn: Executor, windows: Sequence[Window]) -> set[str]:
    """Tenants whose cycle invoice for their window's period exists already (index probes, the
    pairs matched here)."""
    rows = await conn.fetch("SELECT tenant_id, period_start FROM tenant_invoices WHERE tenant_id = ANY($1::text[])"
                            " AND period_start = ANY($2::timestamptz[]) AND NOT off_cycle",
                            [w.tenant_id for w in windows], list({w.start for w in windows}))
    starts = {w.tenant_id: w.start for w in windows}
    return {tenant_id for tenant_id, start in rows if starts.get(tenant_id) == start}


async def plan_per_call(conn: Executor) -> None:
    """Plan the statements of the caller's transaction for their actual parameters at each call,
    never with the connection's cached generic plan. The invoice job's statements run again and
    again on the pool's connections while tenant_invoices grows by thousands of rows between two
    statistics updates: a generic plan made when the table was (said to be) small scans the
    whole table at every call (measured in the bench: up to a second per call), a plan made per
    call sees the arrays and the table's size. Not for a transaction that inserts rows with
    foreign keys: their checks would be re-planned for every row (store.insert_issued prepares
    its one statement instead)."""
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")


# Up to this many distinct periods in a chunk, usage is read per period with the bare aggregate's
# shape (a parallel scan of the period's records); beyond, in one hash join over every window.
PER_PERIOD_SCANS = 4


async def export_snapshot(conn: Executor) -> str:
    """The snapshot of the caller's (repeatable read) transaction, for ``use_snapshot`` on another
    connection while this transaction is open: both then read the same data."""
    snapshot: str = await conn.fetchval("SELECT pg_export_snapshot()")
    return snapshot


async def use_snapshot(conn: Executor, snapshot: str) -> None:
    """First statement of a repeatable read transaction: read what ``snapshot``'s transaction reads."""
    await conn.execute(f"SET TRANSACTION SNAPSHOT '{_snapshot_id(snapshot)}'")


def _snapshot_id(snapshot: str) -> str:
    # SET TRANSACTION SNAPSHOT takes no parameter: the id (hex and dashes) is checked instead.
    if not snapshot or any(c not in "0123456789ABCDEFabcdef-" for c in snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    return snapshot


# A period's usage read exactly like the bare aggregate: every tenant's, no tenant filter.
_PERIOD = ("SELECT tenant_id, call_class, sum(billable_s)::bigint AS seconds FROM call_records"
           " WHERE started_at >= $1 AND started_at < $2 AND call_class = ANY($3::text[])"
           " GROUP BY tenant_id, call_class")


async def period_seconds(conn: Executor, start: datetime, end: datetime,
                         tenant_ids: Sequence[str] | None = None) -> dict[str, list[ClassSeconds]]:
    """One period's billable seconds per tenant and class, read like the bare aggregate reads it
    (one scan of the period's records): every tenant's (``tenant_ids`` None: the very statement of
    the bare aggregate) or only those tenants'."""
    classes = list(BILLED_CLASSES)
    if tenant_ids is None:
        rows = await conn.fetch(_PERIOD, start, end, classes)
    else:
        rows = await conn.fetch(
            "SELECT tenant_id, call_class, sum(billable_s)::bigint AS seconds FROM call_records"
            " WHERE started_at >= $1 AND started_at < $2 AND call_class = ANY($3::text[])"
            " AND tenant_id = ANY($4::text[]) GROUP BY tenant_id, call_class", start, end, classes, list(tenant_ids))
    return _by_tenant(rows)


def _by_tenant(rows: Sequence[asyncpg.Record]) -> dict[str, list[ClassSeconds]]:
    out: dict[str, list[ClassSeconds]] = {}
    for tenant_id, call_class, seconds in rows:
        found = out.get(tenant_id)
        if found is None:
            out[tenant_id] = [ClassSeconds(call_class, int(seconds))]
        else:
            found.append(ClassSeconds(call_class, int(seconds)))
    return out


async def seconds_by_class(conn: Connection, windows: Sequence[Window], *, loaded: bool = True,
                           every_tenant: bool = False) -> dict[str, list[ClassSeconds]]:
    """Billable seconds per tenant and class of the calls that started in the tenant's window.

    Tenants of one chunk mostly share a period (PAYG: the calendar month; Flat: the anniversary
    day), so each distinct period is read like the bare aggregate reads it, restricted to its
    tenants (``period_seconds``). Many distinct periods (Flat tenants spread over the month) would
    mean as many scans: then one join of the records with the loaded windows (``load_windows``,
    done here unless ``loaded``) reads them once. ``every_tenant``: the windows are every tenant's
    that has records (the job's only chunk), so a single period is read exactly like the bare
    aggregate, with no tenant filter, and the tenants not asked for are dropped here."""
    by_period: dict[tuple[datetime, datetime], list[str]] = {}
    for w in windows:
        by_period.setdefault((w.start, w.end), []).append(w.tenant_id)
    if len(by_period) <= PER_PERIOD_SCANS:
        out: dict[str, list[ClassSeconds]] = {}
        for (start, end), tenants in by_period.items():
            unfiltered = every_tenant and len(by_period) == 1
            found = await period_seconds(conn, start, end, None if unfiltered else tenants)
            if not unfiltered:
                out.update(found)
                continue
            for tenant_id in tenants:
                seconds = found.get(tenant_id)
                if seconds is not None:
                    out[tenant_id] = seconds
        return out
    if not loaded:
        await load_windows(conn, windows)
    lo, hi = min(w.start for w in windows), max(w.end for w in windows)
    return _by_tenant(await conn.fetch(
        "SELECT w.tenant_id, c.call_class, sum(c.billable_s)::bigint AS seconds FROM invoice_windows w"
        " JOIN call_records c ON c.tenant_id = w.tenant_id AND c.started_at >= w.start AND c.started_at < w.finish"
        " WHERE c.call_class = ANY($1::text[]) AND c.started_at >= $2 AND c.started_at < $3"
        " GROUP BY w.tenant_id, c.call_class", list(BILLED_CLASSES), lo, hi))


_KINDS = {k.value: k for k in UnitKind}


def _spans_sql(windows: str, where: str = "") -> str:
    # the unit history clipped to each tenant's window ``w`` (start, finish), grouped per tenant
    # as four arrays, then the tenants with the same arrays grouped
    return ("WITH s AS (SELECT h.tenant_id, h.unit_kind, count(*)::int AS n,"
            "   GREATEST(h.started_at, w.start) AS lo, LEAST(COALESCE(h.ended_at, w.finish), w.finish) AS hi"
            f"  FROM {windows} WHERE h.started_at < w.finish AND (h.ended_at IS NULL OR h.ended_at > w.start){where}"
            "  GROUP BY 1, 2, 4, 5),"
            " t AS (SELECT tenant_id, array_agg(unit_kind ORDER BY unit_kind, lo, hi) AS kinds,"
            "   array_agg(n ORDER BY unit_kind, lo, hi) AS ns, array_agg(lo ORDER BY unit_kind, lo, hi) AS los,"
            "   array_agg(hi ORDER BY unit_kind, lo, hi) AS his FROM s GROUP BY tenant_id)"
            " SELECT kinds, ns, los, his, array_agg(tenant_id) AS tenants FROM t GROUP BY 1, 2, 3, 4")


_SPANS = _spans_sql("invoice_windows w JOIN unit_history h ON h.tenant_id = w.tenant_id")
_PERIOD_WINDOW = "(SELECT $1::timestamptz AS start, $2::timestamptz AS finish) w, unit_history h"
_PERIOD_SPANS = _spans_sql(_PERIOD_WINDOW)
_PERIOD_SPANS_OF = _spans_sql(_PERIOD_WINDOW, " AND h.tenant_id = ANY($3::text[])")


async def spans(conn: Executor) -> dict[str, list[UnitSpan]]:
    """The unit history overlapping each loaded window (``load_windows``), clipped to it and
    grouped: units present over the same stretch (most often the whole period) come as one span
    with their count.

    Tenants whose clipped history is the same (most of a job's: same period, same units) share
    one list: PostgreSQL groups them, so only the distinct histories are decoded here (and the job
    computes their base-fee and unit lines once per list). ``unit_id`` is left empty: the lines
    depend on kind, stretch and count only."""
    return _spans(await conn.fetch(_SPANS))


async def period_spans(conn: Executor, start: datetime, end: datetime,
                       tenant_ids: Sequence[str] | None = None) -> dict[str, list[UnitSpan]]:
    """``spans`` with one window for every tenant (``tenant_ids`` None) or for those tenants: no
    windows table needed, so the job reads them while it still looks the tenants' periods up."""
    if tenant_ids is None:
        return _spans(await conn.fetch(_PERIOD_SPANS, start, end))
    return _spans(await conn.fetch(_PERIOD_SPANS_OF, start, end, list(tenant_ids)))


def _spans(rows: Sequence[asyncpg.Record]) -> dict[str, list[UnitSpan]]:
    out: dict[str, list[UnitSpan]] = {}
    for kinds, ns, los, his, tenants in rows:
        shared = [UnitSpan(_KINDS[k], "", lo, hi, n) for k, n, lo, hi in zip(kinds, ns, los, his)]
        for tenant_id in tenants:
            out[tenant_id] = shared
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
    same: dict[tuple[str, str, str], Tax] = {}  # a job's tenants share a few jurisdictions: one Tax each
    out: dict[str, Tax] = {}
    for tenant_id, name, code, rate in rows:
        tax = same.get((name, code, rate))
        if tax is None:
            tax = same[(name, code, rate)] = Tax(name, code, rate)
        out[tenant_id] = tax
    return out


@dataclass(frozen=True)
class PendingRow:
    id: int
    tenant_id: str
    kind: LineKind
    description: str
    amount_micros: int
    reference: str
    created_at: datetime


_ITEM = "id, tenant_id, kind, description, amount_micros, reference, created_at"


def _pending(r: asyncpg.Record) -> PendingRow:
    return PendingRow(r["id"], r["tenant_id"], LineKind(r["kind"]), r["description"], r["amount_micros"],
                      r["reference"], r["created_at"])


async def item_by_reference(conn: Executor, partner_id: str, reference: str) -> PendingRow | None:
    r = await conn.fetchrow(f"SELECT {_ITEM} FROM tenant_invoice_items WHERE partner_id = $1 AND reference = $2",
                            partner_id, reference)
    return None if r is None else _pending(r)


async def pending_of(conn: Executor, tenant_id: str) -> list[PendingRow]:
    """What waits for the tenant's next invoice (one-time charges and credits), oldest first."""
    rows = await conn.fetch(f"SELECT {_ITEM} FROM tenant_invoice_items WHERE tenant_id = $1 AND invoice_id IS NULL"
                            " ORDER BY id", tenant_id)
    return [_pending(r) for r in rows]


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
