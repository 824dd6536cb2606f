"""The invoice job: every tenant's last ended period invoiced exactly once.

Flat tenants get theirs on the anniversary day, PAYG tenants on the 1st for the prior month
(the period rule is the profiles capability's). Tenants go in batches, each batch in ONE
transaction: its invoices are inserted (the unique (tenant, period_start) index skips any a
previous or concurrent run made), numbered and issued together, so a run killed at any point
leaves whole batches or nothing, and the next run carries on. ``signals.invoice_issued`` is
sent after each batch commits; ``invoice.created`` is in the events outbox with the batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import asyncpg
import structlog

from controlplane.db.connection import Connection
from controlplane.invoices import store, usage_store
from controlplane.invoices.compose import Cycle, Pending, finish, fixed_lines
from controlplane.invoices.models import ClassSeconds, InvoiceLine, Tax, UnitSpan
from controlplane.invoices.usage_store import PendingItem, TenantRow, Window
from controlplane.shared.money import currency

log = structlog.get_logger(__name__)
Issued = Callable[[store.IssuedDraft], Awaitable[None]]
# Batches written at once (each its own transaction and connection): one computes or waits on its
# statement while the other's runs in PostgreSQL.
WRITERS = 2
# Invoices composed between two returns to the event loop.
YIELD_EVERY = 50


class TermsLookup(Protocol):
    """Per tenant, its last period ended at ``now`` and the terms of that period (``terms.last_cycles``
    in the daemon); a tenant left out has no profile."""

    async def __call__(self, conn: Connection, tenant_ids: Sequence[str], now: datetime) -> Mapping[str, Cycle]: ...


@dataclass
class JobReport:
    tenants: int = 0
    invoiced: int = 0
    already: int = 0
    skipped: int = 0  # no profile, or the period ended before the tenant existed
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


async def run_invoices(pool: asyncpg.Pool, now: datetime, *, lookup: TermsLookup, batch_size: int = 500,
                       chunk_size: int = 10_000, issued: Issued | None = None) -> JobReport:
    """Tenants are read ``chunk_size`` at a time (every input of the chunk in a few set-based
    statements), their invoices written ``batch_size`` per transaction."""
    if now.tzinfo is None:
        raise ValueError("now must be tz-aware")
    report = JobReport()
    started = time.monotonic()
    after = ""
    while True:
        async with pool.acquire() as conn:
            tenants = await usage_store.tenants_after(conn, after, chunk_size + 1)  # one more: is it the last?
        if not tenants:
            break
        # the first chunk that is also the last holds every tenant: usage is read unfiltered
        every_tenant = not after and len(tenants) <= chunk_size
        tenants = tenants[:chunk_size]
        first, after = tenants[0].tenant_id, tenants[-1].tenant_id
        report.tenants += len(tenants)
        try:
            inputs = await _read(pool, tenants, now, lookup, report, every_tenant=every_tenant)
        except Exception as exc:  # one bad chunk must not stop the others; the next run retries it
            log.exception("invoices.chunk_failed", first=first)
            report.errors.append(f"{first}..{after}: {type(exc).__name__}: {exc}")
            continue
        writers = asyncio.Semaphore(WRITERS)

        async def write(part: list[_Work]) -> None:
            async with writers:
                try:
                    async with pool.acquire() as conn, conn.transaction():
                        invoices = await _write(conn, part, now, report)
                except Exception as exc:
                    log.exception("invoices.batch_failed", first=part[0].draft.tenant_id)
                    report.errors.append(f"{part[0].draft.tenant_id}..: {type(exc).__name__}: {exc}")
                    return
                report.invoiced += len(invoices)
                if issued is not None:
                    for invoice in invoices:
                        await issued(invoice)

        # Each batch is written as soon as it is composed: PostgreSQL writes one batch while the
        # next one is computed here.
        writing: list[asyncio.Task[None]] = []
        try:
            for i in range(0, len(inputs.ids), batch_size):
                tids = inputs.ids[i:i + batch_size]
                ids = iter(store.new_ids(len(tids)))
                part: list[_Work] = []
                try:
                    for j in range(0, len(tids), YIELD_EVERY):
                        part.extend(_compose(inputs, tid, ids) for tid in tids[j:j + YIELD_EVERY])
                        # the writers' replies are handled between slices, not after the whole batch:
                        # their round trips go on while this computes
                        await asyncio.sleep(0)
                except Exception as exc:  # the next run retries these tenants
                    log.exception("invoices.compose_failed", first=inputs.ids[i])
                    report.errors.append(f"{inputs.ids[i]}..: {type(exc).__name__}: {exc}")
                    continue
                writing.append(asyncio.create_task(write(part)))
            await asyncio.gather(*writing)
        except BaseException:  # cancelled: no batch keeps writing behind the caller's back
            for task in writing:
                task.cancel()
            await asyncio.gather(*writing, return_exceptions=True)
            raise
    report.seconds = time.monotonic() - started
    log.info("invoices.job_done", tenants=report.tenants, invoiced=report.invoiced, already=report.already,
             skipped=report.skipped, errors=len(report.errors), seconds=round(report.seconds, 3))
    return report


@dataclass(frozen=True)
class _Work:
    draft: store.NewInvoice
    items: list[PendingItem]
    credit_left_micros: int


@dataclass(frozen=True)
class _Inputs:
    """A chunk's inputs, read from one snapshot; ``ids``: the tenants to invoice, by partner (so
    concurrent batches mostly lock different numbering rows)."""

    ids: list[str]
    tenants: dict[str, TenantRow]
    cycles: dict[str, Cycle]
    seconds: dict[str, list[ClassSeconds]]
    spans: dict[str, list[UnitSpan]]
    items: dict[str, list[PendingItem]]
    taxes: dict[str, Tax]
    currency: str
    fixed: dict[tuple[int, str, int], tuple[InvoiceLine, ...]] = field(default_factory=dict)


async def _read(pool: asyncpg.Pool, tenants: list[TenantRow], now: datetime, lookup: TermsLookup,
                report: JobReport, *, every_tenant: bool = False) -> _Inputs:
    """Every input of the chunk read from one consistent snapshot: the usage aggregate (the
    largest read) runs on a second connection that shares the snapshot (``pg_export_snapshot``),
    while the unit history, items and taxes are read on the first."""
    by_id = {t.tenant_id: t for t in tenants}
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        cycles: dict[str, Cycle] = {}
        found = await lookup(conn, [t.tenant_id for t in tenants], now)
        for t in tenants:
            cycle = found.get(t.tenant_id)
            if cycle is None or cycle.end > now or cycle.end <= t.created_at:
                report.skipped += 1
                continue
            cycles[t.tenant_id] = cycle
        if not cycles:
            return _Inputs([], by_id, cycles, {}, {}, {}, {}, currency())
        windows = [Window(tid, c.start, c.end) for tid, c in cycles.items()]
        await usage_store.load_windows(conn, windows)
        done = await usage_store.invoiced(conn)
        report.already += len(done)
        ids = sorted((tid for tid in cycles if tid not in done), key=lambda tid: (by_id[tid].partner_id, tid))
        if not ids:
            return _Inputs([], by_id, cycles, {}, {}, {}, {}, currency())
        todo = [w for w in windows if w.tenant_id not in done]
        if pool.get_max_size() < 2:  # no second connection to read beside this one
            seconds = await usage_store.seconds_by_class(conn, todo, every_tenant=every_tenant)
            return _Inputs(ids, by_id, cycles, seconds, await usage_store.spans(conn),
                           await usage_store.pending_items(conn, ids), await usage_store.taxes(conn, ids), currency())
        usage = asyncio.create_task(_usage(pool, await usage_store.export_snapshot(conn), todo, every_tenant))
        try:
            spans = await usage_store.spans(conn)
            items = await usage_store.pending_items(conn, ids)
            taxes = await usage_store.taxes(conn, ids)
            seconds = await usage
        except BaseException:
            usage.cancel()
            await asyncio.gather(usage, return_exceptions=True)
            raise
    return _Inputs(ids, by_id, cycles, seconds, spans, items, taxes, currency())


async def _usage(pool: asyncpg.Pool, snapshot: str, windows: list[Window],
                 every_tenant: bool) -> dict[str, list[ClassSeconds]]:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        await usage_store.use_snapshot(conn, snapshot)
        return await usage_store.seconds_by_class(conn, windows, loaded=False, every_tenant=every_tenant)


# Shared empty inputs (never mutated): one object, so the fixed lines' cache key is the same.
_NO_SPANS: list[UnitSpan] = []
_NO_ITEMS: list[PendingItem] = []
_NO_SECONDS: list[ClassSeconds] = []
_NO_PENDING: list[Pending] = []


def _compose(inputs: _Inputs, tid: str, ids: Iterator[str]) -> _Work:
    tenant, cycle = inputs.tenants[tid], inputs.cycles[tid]
    mine = inputs.items.get(tid, _NO_ITEMS)
    tax = inputs.taxes.get(tid)
    spans = inputs.spans.get(tid, _NO_SPANS)
    # Tenants share their cycle object (terms.last_cycles) and, when their unit history is the
    # same, their spans list (usage_store.spans): the fixed lines are computed once per pair.
    key = (id(cycle), tenant.timezone, id(spans))
    fixed = inputs.fixed.get(key)
    if fixed is None:
        fixed = inputs.fixed[key] = fixed_lines(cycle, tenant.timezone, spans)
    made = finish(cycle.terms, fixed, inputs.seconds.get(tid, _NO_SECONDS),
                  [Pending(i.kind, i.description, i.amount_micros) for i in mine] if mine else _NO_PENDING, tax)
    c = made.computed
    return _Work(store.NewInvoice(
        next(ids), tenant.partner_id, tid, cycle.start, cycle.end, inputs.currency, c.subtotal_micros,
        c.tax_micros, c.total_micros, c.lines, None if tax is None else tax.name,
        None if tax is None else tax.code, None if tax is None else tax.rate_percent,
        cycle.terms.net_terms_days), mine, made.credit_left_micros)


async def _write(conn: Connection, work: list[_Work], now: datetime, report: JobReport) -> list[store.IssuedDraft]:
    """One transaction: the batch's invoices inserted issued; any a previous or concurrent run made
    meanwhile is left out (and what it would have consumed stays for it)."""
    invoices = await store.insert_issued(conn, [w.draft for w in work], now)
    report.already += len(work) - len(invoices)
    made = {i.draft.id for i in invoices}
    for w in work:
        if w.draft.id in made and w.items:
            await usage_store.consume(conn, w.draft.partner_id, w.draft.tenant_id, w.draft.id, w.items,
                                      w.credit_left_micros)
    return invoices
