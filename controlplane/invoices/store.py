"""The SQL of tenant invoices: reads, issuing with gapless numbers, payments, refunds, statuses,
and the credits and one-time charges that wait for a tenant's next invoice.

The functions named in the issue 15 contract (get, apply_payment, apply_refund, set_status,
add_credit, unpaid_due_before) are what collection, documents and dunning call."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

import asyncpg
import msgspec

from controlplane.db.connection import Connection, Executor
from controlplane.events.emit import PendingEvent, emit_many
from controlplane.invoices import status as transitions
from controlplane.invoices.calc import due_at
from controlplane.invoices.models import Invoice, InvoiceLine, InvoiceStats, InvoiceStatus, LineKind

COLUMNS = ("id, partner_id, tenant_id, number, status, off_cycle, period_start, period_end, issued_at, due_at,"
           " currency, subtotal_micros, tax_micros, total_micros, paid_micros, credited_micros, lines, tax_name,"
           " tax_rate, created_at")


_COPY_COLUMNS = ["id", "partner_id", "tenant_id", "number", "status", "period_start", "period_end", "issued_at",
                 "due_at", "currency", "subtotal_micros", "tax_micros", "total_micros", "lines", "tax_name", "tax_code",
                 "tax_rate", "net_terms_days", "created_at", "updated_at"]


class InvoiceNotFound(LookupError):
    pass


class RefundTooLarge(ValueError):
    """A refund above what was paid (minus what was refunded already)."""


def new_id() -> str:
    return f"inv_{secrets.token_hex(8)}"


def new_ids(n: int) -> list[str]:
    """``n`` ids like ``new_id``'s, from one read of the random source (the job's batches)."""
    raw = secrets.token_hex(8 * n)
    return ["inv_" + raw[i:i + 16] for i in range(0, 16 * n, 16)]


_LINES = msgspec.json.Encoder()


def lines_json(lines: Sequence[InvoiceLine]) -> str:
    """The lines as a JSON array of objects with InvoiceLine's fields (msgspec encodes the structs)."""
    return _LINES.encode(lines).decode()


def _lines(raw: Any) -> tuple[InvoiceLine, ...]:
    data = json.loads(raw) if isinstance(raw, str) else raw
    return tuple(InvoiceLine(str(d["kind"]), str(d["description"]), str(d["quantity"]), int(d["unit_micros"]),
                             int(d["amount_micros"])) for d in data)


def invoice_from_row(row: asyncpg.Record) -> Invoice:
    return Invoice(
        id=row["id"], partner_id=row["partner_id"], tenant_id=row["tenant_id"], number=row["number"],
        status=InvoiceStatus(row["status"]), period_start=row["period_start"], period_end=row["period_end"],
        issued_at=row["issued_at"], due_at=row["due_at"], currency=row["currency"],
        subtotal_micros=row["subtotal_micros"], tax_micros=row["tax_micros"], total_micros=row["total_micros"],
        paid_micros=row["paid_micros"], credited_micros=row["credited_micros"], lines=_lines(row["lines"]),
        tax_name=row["tax_name"], tax_rate=row["tax_rate"], off_cycle=row["off_cycle"], created_at=row["created_at"])


class NewInvoice(msgspec.Struct, frozen=True, gc=False):
    """A computed invoice to insert as a DRAFT (the job issues it in the same transaction); a
    struct: the job makes 10,000 at once (see models.InvoiceLine)."""

    id: str
    partner_id: str
    tenant_id: str
    period_start: datetime
    period_end: datetime
    currency: str
    subtotal_micros: int
    tax_micros: int
    total_micros: int
    lines: tuple[InvoiceLine, ...]
    tax_name: str | None
    tax_code: str | None
    tax_rate: str | None
    net_terms_days: int
    off_cycle: bool = False


async def insert_drafts(conn: Connection, invoices: Sequence[NewInvoice]) -> list[str]:
    """Insert DRAFTs; a cycle invoice whose (tenant, period) exists already is skipped. The ids inserted."""
    if not invoices:
        return []
    rows = await conn.fetch(
        "INSERT INTO tenant_invoices (id, partner_id, tenant_id, status, off_cycle, period_start, period_end,"
        " currency, subtotal_micros, tax_micros, total_micros, lines, tax_name, tax_code, tax_rate, net_terms_days)"
        " SELECT i.id, i.partner_id, i.tenant_id, 'DRAFT', i.off_cycle, i.period_start, i.period_end, i.currency,"
        "  i.subtotal, i.tax, i.total, i.lines::jsonb, i.tax_name, i.tax_code, i.tax_rate, i.net_terms"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::timestamptz[], $6::timestamptz[],"
        "  $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[],"
        "  $15::int[]) AS i(id, partner_id, tenant_id, off_cycle, period_start, period_end, currency, subtotal, tax,"
        "  total, lines, tax_name, tax_code, tax_rate, net_terms)"
        " ON CONFLICT (tenant_id, period_start) WHERE NOT off_cycle DO NOTHING RETURNING id",
        [i.id for i in invoices], [i.partner_id for i in invoices], [i.tenant_id for i in invoices],
        [i.off_cycle for i in invoices], [i.period_start for i in invoices], [i.period_end for i in invoices],
        [i.currency for i in invoices], [i.subtotal_micros for i in invoices], [i.tax_micros for i in invoices],
        [i.total_micros for i in invoices], [lines_json(i.lines) for i in invoices],
        [i.tax_name for i in invoices], [i.tax_code for i in invoices], [i.tax_rate for i in invoices],
        [i.net_terms_days for i in invoices])
    return [r["id"] for r in rows]


async def _lock_numbering(conn: Connection, partners: list[str]) -> None:
    """The partners' counter rows, created if need be and locked in partner order (no deadlock
    between issuers) until commit."""
    await conn.execute("INSERT INTO invoice_numbering (partner_id) SELECT unnest($1::text[])"
                       " ON CONFLICT DO NOTHING", partners)
    await conn.execute("SELECT 1 FROM invoice_numbering WHERE partner_id = ANY($1::text[])"
                       " ORDER BY partner_id FOR UPDATE", partners)


async def _numbers(conn: Connection, counts: dict[str, int], *, locked: bool = False) -> dict[str, tuple[str, int]]:
    """Reserve ``counts[partner]`` numbers per partner: (prefix, first number). The counter rows
    stay locked until commit, so numbers are gapless: a rolled-back issue gives its numbers back.
    ``locked``: ``_lock_numbering`` ran already in this transaction."""
    partners = sorted(counts)
    if not locked:
        await _lock_numbering(conn, partners)
    rows = await conn.fetch(
        "UPDATE invoice_numbering n SET next_number = n.next_number + c.k FROM unnest($1::text[], $2::int[])"
        " AS c(partner_id, k) WHERE n.partner_id = c.partner_id RETURNING n.partner_id, n.prefix,"
        " n.next_number - c.k AS first", partners, [counts[p] for p in partners])
    return {r["partner_id"]: (r["prefix"], int(r["first"])) for r in rows}


class IssuedDraft(NamedTuple):
    """A cycle invoice ``insert_issued`` wrote: its draft, number and due date (the rest of the
    issued invoice is fixed: SENT, issued at the batch's ``now``, nothing paid)."""

    draft: NewInvoice
    number: str
    due_at: datetime


async def cycles_invoiced(conn: Connection, periods: Sequence[tuple[str, datetime]]) -> set[tuple[str, datetime]]:
    """The (tenant, period start) pairs of ``periods`` whose cycle invoice exists: index probes on
    (tenant, period start), the pairs matched here. Planned for these arrays, a statement of its
    own, not the connection's cached one, whose generic plan could be a scan of the whole table
    (usage_store.plan_per_call)."""
    if not periods:
        return set()
    check = await conn.prepare(
        "SELECT tenant_id, period_start FROM tenant_invoices WHERE tenant_id = ANY($1::text[])"
        " AND period_start = ANY($2::timestamptz[]) AND NOT off_cycle")
    wanted = set(periods)
    rows = await check.fetch([t for t, _ in periods], list({start for _, start in periods}))
    return {(r[0], r[1]) for r in rows if (r[0], r[1]) in wanted}


async def insert_issued(conn: Connection, invoices: Sequence[NewInvoice], now: datetime) -> list[IssuedDraft]:
    """Cycle invoices inserted already issued (numbered, SENT, due date, ``invoice.created``),
    inside the caller's transaction. A (tenant, period) that has its invoice already is left out:
    checked after the partners' counter rows are locked, which every issuer of cycle invoices
    takes first, so no other transaction can insert one meanwhile."""
    if not invoices:
        return []
    counts: dict[str, int] = {}
    for i in invoices:
        counts[i.partner_id] = counts.get(i.partner_id, 0) + 1
    await _lock_numbering(conn, sorted(counts))  # the real counts follow the check
    skip = await cycles_invoiced(conn, [(i.tenant_id, i.period_start) for i in invoices])
    todo = [i for i in invoices if (i.tenant_id, i.period_start) not in skip] if skip else list(invoices)
    if not todo:
        return []
    counts = {}
    for i in todo:
        counts[i.partner_id] = counts.get(i.partner_id, 0) + 1
    firsts = await _numbers(conn, counts, locked=True)
    next_of = {p: first for p, (_, first) in firsts.items()}
    made: list[IssuedDraft] = []
    dues: dict[int, datetime] = {}  # the batch shares ``now``: one due date per net terms
    for i in todo:
        prefix = firsts[i.partner_id][0]
        number = f"{prefix}{next_of[i.partner_id]:06d}"
        next_of[i.partner_id] += 1
        due = dues.get(i.net_terms_days)
        if due is None:
            due = dues[i.net_terms_days] = due_at(now, i.net_terms_days)
        made.append(IssuedDraft(i, number, due))
    # COPY: the cheapest way to write many rows (inside the caller's transaction, all or nothing)
    await conn.copy_records_to_table(
        "tenant_invoices", columns=_COPY_COLUMNS,
        records=[(i.id, i.partner_id, i.tenant_id, number, "SENT", i.period_start, i.period_end, now, due,
                  i.currency, i.subtotal_micros, i.tax_micros, i.total_micros, lines_json(i.lines), i.tax_name,
                  i.tax_code, i.tax_rate, i.net_terms_days, now, now) for i, number, due in made])
    await emit_many(conn, [("invoice.created", i.partner_id, i.tenant_id,
                            _data(i, number, "SENT", due)) for i, number, due in made])
    return made


async def issue(conn: Connection, invoice_ids: Sequence[str], now: datetime) -> list[Invoice]:
    """DRAFT -> SENT with the partner's next numbers (gapless: the counter row is updated in this
    transaction, so a rollback gives the numbers back), the due date from the net terms, and one
    ``invoice.created`` event each. Ids not in DRAFT are refused (TransitionRefused)."""
    if not invoice_ids:
        return []
    drafts = await conn.fetch("SELECT id, partner_id, status, net_terms_days FROM tenant_invoices"
                              " WHERE id = ANY($1::text[]) ORDER BY partner_id, created_at, id FOR UPDATE",
                              list(invoice_ids))
    if len(drafts) != len(set(invoice_ids)):
        raise InvoiceNotFound(sorted(set(invoice_ids) - {r["id"] for r in drafts}))
    for r in drafts:
        transitions.check(InvoiceStatus(r["status"]), InvoiceStatus.SENT)
    per_partner: dict[str, list[asyncpg.Record]] = {}
    for r in drafts:
        per_partner.setdefault(r["partner_id"], []).append(r)
    firsts = await _numbers(conn, {p: len(rows) for p, rows in per_partner.items()})
    ids: list[str] = []
    numbers: list[str] = []
    dues: list[datetime] = []
    for partner_id, (prefix, first) in sorted(firsts.items()):
        for offset, r in enumerate(per_partner[partner_id]):
            ids.append(r["id"])
            numbers.append(f"{prefix}{first + offset:06d}")
            dues.append(due_at(now, r["net_terms_days"]))
    updated = await conn.fetch(
        f"UPDATE tenant_invoices t SET status = 'SENT', number = u.number, issued_at = $4, due_at = u.due_at,"
        f" updated_at = $4 FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(id, number, due_at)"
        f" WHERE t.id = u.id RETURNING {', '.join('t.' + c.strip() for c in COLUMNS.split(','))}",
        ids, numbers, dues, now)
    invoices = [invoice_from_row(r) for r in updated]
    events: list[PendingEvent] = [("invoice.created", i.partner_id, i.tenant_id, event_data(i)) for i in invoices]
    await emit_many(conn, events)
    return invoices


@lru_cache(maxsize=1024)
def _iso(moment: datetime) -> str:
    # a job's invoices share a few period bounds and due dates: each formatted once
    return moment.isoformat()


def event_data(invoice: Invoice) -> dict[str, Any]:
    return _data(invoice, invoice.number, invoice.status.value, invoice.due_at)


def _data(i: Invoice | NewInvoice, number: str | None, status: str, due: datetime | None) -> dict[str, Any]:
    # the invoice events' data; the job passes its drafts (with the number and due date it gave them)
    return {"invoice_id": i.id, "number": number, "tenant_id": i.tenant_id, "status": status,
            "period_start": _iso(i.period_start), "period_end": _iso(i.period_end),
            "due_at": _iso(due) if due else None, "subtotal_micros": i.subtotal_micros,
            "tax_micros": i.tax_micros, "total_micros": i.total_micros, "currency": i.currency}


async def get(conn: Executor, invoice_id: str) -> Invoice | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM tenant_invoices WHERE id = $1", invoice_id)
    return None if row is None else invoice_from_row(row)


async def _locked(conn: Connection, invoice_id: str) -> Invoice:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM tenant_invoices WHERE id = $1 FOR UPDATE", invoice_id)
    if row is None:
        raise InvoiceNotFound(invoice_id)
    return invoice_from_row(row)


async def set_status(conn: Connection, invoice_id: str, status: InvoiceStatus) -> Invoice:
    """Any status change other than issuing and payments, checked by status.py. Becoming
    OVERDUE emits ``invoice.overdue`` in the caller's transaction: the transition table allows
    it once per stretch of non-payment (OVERDUE -> OVERDUE is refused), and dunning flags an
    invoice once."""
    current = await _locked(conn, invoice_id)
    if status is InvoiceStatus.SENT:
        raise transitions.TransitionRefused(current.status, status)  # issuing numbers it: use issue()
    transitions.check(current.status, status)
    row = await conn.fetchrow(f"UPDATE tenant_invoices SET status = $2, updated_at = now() WHERE id = $1"
                              f" RETURNING {COLUMNS}", invoice_id, status.value)
    assert row is not None
    changed = invoice_from_row(row)
    if status is InvoiceStatus.OVERDUE:
        await emit_many(conn, [("invoice.overdue", changed.partner_id, changed.tenant_id,
                                {**event_data(changed), "paid_micros": changed.paid_micros,
                                 "outstanding_micros": changed.outstanding_micros})])
    return changed


async def apply_payment(conn: Connection, invoice_id: str, amount_micros: int, reference: str) -> Invoice:
    """A payment of ``amount_micros`` (idempotent by reference) -> PAID or PARTIALLY_PAID."""
    if amount_micros <= 0:
        raise ValueError("amount_micros must be positive")
    current = await _locked(conn, invoice_id)
    known = await conn.fetchval("SELECT 1 FROM tenant_invoice_payments WHERE invoice_id = $1 AND kind = 'payment'"
                                " AND reference = $2", invoice_id, reference)
    if known:
        return current
    if current.status not in transitions.PAYABLE:
        raise transitions.TransitionRefused(current.status, InvoiceStatus.PAID)
    await conn.execute("INSERT INTO tenant_invoice_payments (invoice_id, kind, reference, amount_micros)"
                       " VALUES ($1, 'payment', $2, $3)", invoice_id, reference, amount_micros)
    paid = current.paid_micros + amount_micros
    target = transitions.after_payment(current.status, current.total_micros, paid)
    row = await conn.fetchrow(f"UPDATE tenant_invoices SET paid_micros = $2, status = $3, updated_at = now()"
                              f" WHERE id = $1 RETURNING {COLUMNS}", invoice_id, paid, target.value)
    assert row is not None
    return invoice_from_row(row)


async def apply_refund(conn: Connection, invoice_id: str, amount_micros: int, reference: str) -> Invoice:
    """A refund (idempotent by reference) adds to credited_micros; never above what was paid."""
    if amount_micros <= 0:
        raise ValueError("amount_micros must be positive")
    current = await _locked(conn, invoice_id)
    if current.credited_micros + amount_micros > current.paid_micros:
        known = await conn.fetchval("SELECT 1 FROM tenant_invoice_payments WHERE invoice_id = $1"
                                    " AND kind = 'refund' AND reference = $2", invoice_id, reference)
        if known:
            return current
        raise RefundTooLarge(f"refund of {amount_micros} above the {current.paid_micros - current.credited_micros}"
                             " left to refund")
    inserted = await conn.fetchval(
        "INSERT INTO tenant_invoice_payments (invoice_id, kind, reference, amount_micros)"
        " VALUES ($1, 'refund', $2, $3) ON CONFLICT DO NOTHING RETURNING 1", invoice_id, reference, amount_micros)
    if inserted is None:
        return current
    row = await conn.fetchrow(f"UPDATE tenant_invoices SET credited_micros = credited_micros + $2,"
                              f" updated_at = now() WHERE id = $1 RETURNING {COLUMNS}", invoice_id, amount_micros)
    assert row is not None
    return invoice_from_row(row)


async def add_credit(conn: Executor, partner_id: str, tenant_id: str, amount_micros: int, reference: str,
                     note: str) -> None:
    """A credit on the tenant's next invoice (idempotent by (partner, reference))."""
    await add_item(conn, partner_id, tenant_id, LineKind.CREDIT, note or "Credit", amount_micros, reference)


async def add_item(conn: Executor, partner_id: str, tenant_id: str, kind: LineKind, description: str,
                   amount_micros: int, reference: str) -> bool:
    """A credit or a one-time charge (setup, porting, custom) for the next invoice; False: known reference."""
    if amount_micros <= 0:
        raise ValueError("amount_micros must be positive")
    done = await conn.fetchval(
        "INSERT INTO tenant_invoice_items (partner_id, tenant_id, kind, description, amount_micros, reference)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (partner_id, reference) DO NOTHING RETURNING 1",
        partner_id, tenant_id, kind.value, description, amount_micros, reference)
    return done is not None


async def unpaid_due_before(conn: Executor, at: datetime) -> list[Invoice]:
    rows = await conn.fetch(f"SELECT {COLUMNS} FROM tenant_invoices WHERE status IN ('SENT', 'PARTIALLY_PAID',"
                            f" 'OVERDUE') AND due_at < $1 ORDER BY due_at, id", at)
    return [invoice_from_row(r) for r in rows]


@dataclass(frozen=True)
class Filters:
    status: InvoiceStatus | None = None
    tenant: str | None = None  # tenant id or SIP prefix
    issued_from: datetime | None = None
    issued_to: datetime | None = None
    number: str | None = None


def _where(partner_id: str, f: Filters) -> tuple[str, list[Any]]:
    clauses = ["i.partner_id = $1"]
    args: list[Any] = [partner_id]

    def add(sql: str, value: Any) -> None:
        args.append(value)
        clauses.append(sql.replace("?", f"${len(args)}"))

    if f.status is not None:
        add("i.status = ?", f.status.value)
    if f.tenant is not None:
        add("(i.tenant_id = ? OR i.tenant_id IN (SELECT id FROM tenants WHERE sip_prefix = ?))", f.tenant)
    if f.issued_from is not None:
        add("COALESCE(i.issued_at, i.created_at) >= ?", f.issued_from)
    if f.issued_to is not None:
        add("COALESCE(i.issued_at, i.created_at) < ?", f.issued_to)
    if f.number is not None:
        add("i.number = ?", f.number)
    return " AND ".join(clauses), args


async def list_page(conn: Executor, partner_id: str, f: Filters, *, limit: int,
                    after: tuple[datetime, str] | None) -> list[Invoice]:
    where, args = _where(partner_id, f)
    if after is not None:
        args.extend(after)
        where += f" AND (i.created_at, i.id) < (${len(args) - 1}, ${len(args)})"
    args.append(limit)
    rows = await conn.fetch(f"SELECT {', '.join('i.' + c.strip() for c in COLUMNS.split(','))}"
                            f" FROM tenant_invoices i WHERE {where} ORDER BY i.created_at DESC, i.id DESC"
                            f" LIMIT ${len(args)}", *args)
    return [invoice_from_row(r) for r in rows]


async def stats(conn: Executor, partner_id: str, f: Filters) -> InvoiceStats:
    """Over the issued invoices (DRAFT and VOID left out) matching the filters."""
    where, args = _where(partner_id, f)
    row = await conn.fetchrow(
        "SELECT count(*) AS n, COALESCE(sum(total_micros), 0) AS total, COALESCE(sum(paid_micros), 0) AS paid,"
        " COALESCE(sum(total_micros) FILTER (WHERE status IN ('SENT', 'PARTIALLY_PAID', 'OVERDUE')), 0) AS unpaid,"
        " COALESCE(sum(GREATEST(total_micros - paid_micros, 0))"
        "  FILTER (WHERE status IN ('SENT', 'PARTIALLY_PAID', 'OVERDUE')), 0) AS outstanding"
        f" FROM tenant_invoices i WHERE {where} AND i.status NOT IN ('DRAFT', 'VOID')", *args)
    assert row is not None
    return InvoiceStats(int(row["n"]), int(row["total"]), int(row["paid"]), int(row["unpaid"]),
                        int(row["outstanding"]))


async def numbering(conn: Executor, partner_id: str) -> tuple[str, int]:
    row = await conn.fetchrow("SELECT prefix, next_number FROM invoice_numbering WHERE partner_id = $1", partner_id)
    return ("INV-", 1) if row is None else (row["prefix"], int(row["next_number"]))


async def set_prefix(conn: Executor, partner_id: str, prefix: str) -> tuple[str, int]:
    """A new prefix for the next numbers; the counter goes on (a number is never reused)."""
    row = await conn.fetchrow(
        "INSERT INTO invoice_numbering (partner_id, prefix) VALUES ($1, $2)"
        " ON CONFLICT (partner_id) DO UPDATE SET prefix = EXCLUDED.prefix RETURNING prefix, next_number",
        partner_id, prefix)
    assert row is not None
    return row["prefix"], int(row["next_number"])
