"""What an invoice is computed from, read for a batch of tenants at once (one statement per kind
of input): billable seconds by class (the period's usage counters), unit history, pending credits
and one-time charges, the tenant's tax jurisdiction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

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
    """The windows as a temporary table, analysed, for ``spans`` (inside the caller's transaction:
    it is dropped at commit). With real row counts the planner joins the unit history by hash in
    one scan instead of an index probe per tenant."""
    await conn.execute("CREATE TEMPORARY TABLE invoice_windows (tenant_id text PRIMARY KEY, start timestamptz,"
                       " finish timestamptz) ON COMMIT DROP")
    await conn.copy_records_to_table("invoice_windows", records=[(w.tenant_id, w.start, w.end) for w in windows],
                                     columns=["tenant_id", "start", "finish"])
    await conn.execute("ANALYZE invoice_windows")


async def plan_per_call(conn: Executor) -> None:
    """Plan the statements of the caller's transaction for their actual parameters at each call,
    never with the connection's cached generic plan. The invoice job's statements run again and
    again on the pool's connections while tenant_invoices grows by thousands of rows between two
    statistics updates: a generic plan made when the table was (said to be) small scans the
    whole table at every call (measured in the bench: up to a second per call), a plan made per
    call sees the arrays and the table's size. Not for a transaction that inserts rows with
    foreign keys: their checks would be re-planned for every row (store.cycles_invoiced prepares
    its statement instead)."""
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")


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


async def period_usage(conn: Executor, periods: Sequence[tuple[str, date]]) -> dict[str, list[ClassSeconds]]:
    """Billable seconds per tenant and billed class in each (tenant, period key) given.

    Read from the period's usage counters (``tenant_usage``), not from the call records: the call
    recorder adds every call to its period's counter in the transaction that records it, keyed
    by ``cdr_ingest.cycles.period_key`` (the rule the invoice's period is named by too), and
    prices each call against the same counter's included minutes. So the invoice counts exactly
    what the calls were priced against, and reads three rows per tenant instead of every call
    of its period (docs/invoices.md "Usage")."""
    rows = await conn.fetch(
        "SELECT u.tenant_id, u.call_class, u.billable_s FROM unnest($1::text[], $2::date[]) AS p(tenant_id, k)"
        " JOIN tenant_usage u ON u.tenant_id = p.tenant_id AND u.cycle_start = p.k"
        " WHERE u.call_class = ANY($3::text[]) AND u.billable_s > 0",
        [t for t, _ in periods], [k for _, k in periods], list(BILLED_CLASSES))
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
