"""The invoice job: every tenant's last ended period invoiced exactly once.

Flat tenants get theirs on the anniversary day, PAYG tenants on the 1st for the prior month
(the period rule is the profiles capability's). Tenants go in batches, each batch in ONE
transaction: its invoices are inserted (the unique (tenant, period_start) index skips any a
previous or concurrent run made), numbered and issued together, so a run killed at any point
leaves whole batches or nothing, and the next run carries on. ``signals.invoice_issued`` is
sent after each batch commits; ``invoice.created`` is in the events outbox with the batch."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import msgspec
import structlog

from controlplane.db.connection import Connection
from controlplane.invoices import store, usage_store
from controlplane.invoices.compose import Pending, finish, fixed_lines
from controlplane.invoices.job_inputs import ChunkInputs, TermsLookup, read_chunk
from controlplane.invoices.models import ClassSeconds, UnitSpan
from controlplane.invoices.usage_store import PendingItem

log = structlog.get_logger(__name__)
Issued = Callable[[store.IssuedDraft], Awaitable[None]]
# Batches written at once (each its own transaction and connection): while one waits for its
# commit (the WAL flush; the NOTIFY of the events serialises the commits) or for this process
# to read its reply, the other's statements run in PostgreSQL (3 measured no better on 2 cores).
WRITERS = 2
# Invoices composed between two returns to the event loop.
YIELD_EVERY = 50


@dataclass
class JobReport:
    tenants: int = 0
    invoiced: int = 0
    already: int = 0
    skipped: int = 0  # no profile, or the period ended before the tenant existed
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    read_seconds: float = 0.0  # of which reading the inputs; the rest: composing and writing


async def run_invoices(pool: asyncpg.Pool, now: datetime, *, lookup: TermsLookup, batch_size: int = 500,
                       chunk_size: int = 10_000, issued: Issued | None = None) -> JobReport:
    """Tenants are read ``chunk_size`` at a time (every input of the chunk in a few set-based
    statements), their invoices written ``batch_size`` per transaction."""
    if now.tzinfo is None:
        raise ValueError("now must be tz-aware")
    with _collector_paused():
        return await _run(pool, now, lookup, batch_size, chunk_size, issued)


# Jobs running in this process with the cyclic garbage collector paused (see _collector_paused).
_paused = 0


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The job allocates some 10^5 objects (rows, tenants, lines) that live until its chunk is
    written and form no reference cycles; the collector's passes over them, two of them full, were
    a fifth of the job's time. Paused for the run (reference counting still frees everything),
    resumed when the last job of the process ends; left alone if someone else paused it."""
    global _paused
    if _paused == 0 and not gc.isenabled():
        yield
        return
    _paused += 1
    gc.disable()
    try:
        yield
    finally:
        _paused -= 1
        if _paused == 0:
            gc.enable()


async def _run(pool: asyncpg.Pool, now: datetime, lookup: TermsLookup, batch_size: int, chunk_size: int,
               issued: Issued | None) -> JobReport:
    report = JobReport()
    started = time.monotonic()
    after = ""
    while True:
        async with pool.acquire() as conn:
            tenants = await usage_store.tenants_after(conn, after, chunk_size + 1)  # one more: is it the last?
        if not tenants:
            break
        # the first chunk that is also the last holds every tenant: unit history is read unfiltered
        every_tenant = not after and len(tenants) <= chunk_size
        tenants = tenants[:chunk_size]
        first, after = tenants[0].tenant_id, tenants[-1].tenant_id
        report.tenants += len(tenants)
        reading = time.monotonic()
        try:
            inputs = await read_chunk(pool, tenants, now, lookup, every_tenant=every_tenant)
        except Exception as exc:  # one bad chunk must not stop the others; the next run retries it
            log.exception("invoices.chunk_failed", first=first)
            report.errors.append(f"{first}..{after}: {type(exc).__name__}: {exc}")
            continue
        finally:
            report.read_seconds += time.monotonic() - reading
        report.skipped += inputs.skipped
        report.already += inputs.already
        await _compose_and_write(pool, inputs, now, report, batch_size, issued)
    report.seconds = time.monotonic() - started
    log.info("invoices.job_done", tenants=report.tenants, invoiced=report.invoiced, already=report.already,
             skipped=report.skipped, errors=len(report.errors), seconds=round(report.seconds, 3),
             read_seconds=round(report.read_seconds, 3))
    return report


class _Work(msgspec.Struct, frozen=True, gc=False):
    draft: store.NewInvoice
    items: list[PendingItem]
    credit_left_micros: int


async def _compose_and_write(pool: asyncpg.Pool, inputs: ChunkInputs, now: datetime, report: JobReport,
                             batch_size: int, issued: Issued | None) -> None:
    """The chunk's invoices composed batch by batch here while ``WRITERS`` connections write the
    batches already composed (each its own transaction): PostgreSQL writes while Python computes."""
    queue: asyncio.Queue[list[_Work] | None] = asyncio.Queue()

    async def write() -> None:
        part = await queue.get()
        while part is not None:
            # one connection for batch after batch (no reset per batch); a new one after a failure
            async with pool.acquire() as conn:
                while part is not None:
                    try:
                        async with conn.transaction():
                            invoices = await _write(conn, part, now, report)
                    except Exception as exc:
                        log.exception("invoices.batch_failed", first=part[0].draft.tenant_id)
                        report.errors.append(f"{part[0].draft.tenant_id}..: {type(exc).__name__}: {exc}")
                        part = await queue.get()
                        break
                    report.invoiced += len(invoices)
                    if issued is not None:
                        for invoice in invoices:
                            await issued(invoice)
                    part = await queue.get()

    writers = [asyncio.create_task(write()) for _ in range(WRITERS)]
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
            queue.put_nowait(part)
        for _ in writers:
            queue.put_nowait(None)
        await asyncio.gather(*writers)
    except BaseException:  # cancelled: no batch keeps writing behind the caller's back
        for task in writers:
            task.cancel()
        await asyncio.gather(*writers, return_exceptions=True)
        raise


# Shared empty inputs (never mutated): one object, so the fixed lines' cache key is the same.
_NO_SPANS: list[UnitSpan] = []
_NO_ITEMS: list[PendingItem] = []
_NO_SECONDS: list[ClassSeconds] = []
_NO_PENDING: list[Pending] = []


def _compose(inputs: ChunkInputs, tid: str, ids: Iterator[str]) -> _Work:
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
