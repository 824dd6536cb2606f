"""What the invoice job reads for a chunk of tenants, from one consistent snapshot, in a few
set-based statements spread over up to four connections (docs/invoices.md "Speed").

The chunk's first connection opens a repeatable read transaction and exports its snapshot; the
other connections import it (``pg_export_snapshot`` / ``SET TRANSACTION SNAPSHOT``), so every
input is read as of one moment. The usage aggregate is the largest read; it needs the tenants'
periods, which need their terms (the lookup, mostly Python). So a sample of the tenants is looked
up first: when they share one period (the calendar month of PAYG tenants, most often), that
period's usage, unit history, credits and taxes are read on other connections while the first
one looks every tenant up. A tenant with another period after all gets its usage and unit history
read apart (a windows table and a join); when the sample has several periods, nothing is read
ahead."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

import asyncpg

from controlplane.db.connection import Connection
from controlplane.invoices import usage_store
from controlplane.invoices.compose import Cycle
from controlplane.invoices.models import ClassSeconds, InvoiceLine, Tax, UnitSpan
from controlplane.invoices.usage_store import PendingItem, TenantRow, Window
from controlplane.shared.money import currency

T = TypeVar("T")
Period = tuple[datetime, datetime]
# Tenants looked up first, spread over the chunk, to guess the period every tenant shares.
SAMPLE = 64


class TermsLookup(Protocol):
    """Per tenant, its last period ended at ``now`` and the terms of that period (``terms.last_cycles``
    in the daemon); a tenant left out has no profile."""

    async def __call__(self, conn: Connection, tenant_ids: Sequence[str], now: datetime) -> Mapping[str, Cycle]: ...


@dataclass(frozen=True)
class ChunkInputs:
    """A chunk's inputs; ``ids``: the tenants to invoice, by partner (so concurrent batches mostly
    lock different numbering rows); ``skipped`` (no profile, or the period ended before the tenant
    existed) and ``already`` (invoiced) are counts for the job's report. The maps may hold tenants
    that are not in ``ids`` (read for the whole chunk ahead of the lookup)."""

    ids: list[str]
    tenants: dict[str, TenantRow]
    cycles: dict[str, Cycle]
    seconds: dict[str, list[ClassSeconds]]
    spans: dict[str, list[UnitSpan]]
    items: dict[str, list[PendingItem]]
    taxes: dict[str, Tax]
    currency: str
    skipped: int = 0
    already: int = 0
    # the base-fee and unit lines per (cycle, time zone, spans list): filled by the job as it composes
    fixed: dict[tuple[int, str, int], tuple[InvoiceLine, ...]] = field(default_factory=dict)


@dataclass
class _Side:
    """What is read beside the usage for the guessed period: unit history, credits, taxes."""

    spans: dict[str, list[UnitSpan]]
    items: dict[str, list[PendingItem]]
    taxes: dict[str, Tax]


async def read_chunk(pool: asyncpg.Pool, tenants: list[TenantRow], now: datetime, lookup: TermsLookup, *,
                     every_tenant: bool = False) -> ChunkInputs:
    """``every_tenant``: the chunk is every tenant (the run's only chunk), so a period's usage and
    unit history are read with no tenant filter, exactly like the bare aggregate."""
    by_id = {t.tenant_id: t for t in tenants}
    chunk = [t.tenant_id for t in tenants]
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        await usage_store.plan_per_call(conn)
        if pool.get_max_size() < 2:  # no second connection to read beside this one
            return await _read_inline(conn, by_id, chunk, now, lookup, every_tenant)
        snapshot = await usage_store.export_snapshot(conn)
        usage_early: asyncio.Task[dict[str, list[ClassSeconds]]] | None = None
        side_early: asyncio.Task[_Side] | None = None
        usage_rest: asyncio.Task[dict[str, list[ClassSeconds]]] | None = None
        side: _Side | None = None
        try:
            early = await _early(conn, lookup, chunk, now)
            if early is not None:
                of = None if every_tenant else chunk
                usage_early = asyncio.create_task(_on(pool, snapshot, lambda c: usage_store.period_seconds(
                    c, early[0], early[1], of)))
                side_early = asyncio.create_task(_on(pool, snapshot, lambda c: _side(c, early, of, chunk)))
            work = await _todo(conn, by_id, chunk, now, lookup)
            if not work.ids:
                return work.nothing(by_id)
            todo, ids = work.todo, work.ids
            rest = todo if early is None else [w for w in todo if (w.start, w.end) != early]
            spans: dict[str, list[UnitSpan]] = {}
            if rest:
                unfiltered = every_tenant and early is None
                usage_rest = asyncio.create_task(_on(pool, snapshot, lambda c: usage_store.seconds_by_class(
                    c, rest, loaded=False, every_tenant=unfiltered)))
                await usage_store.load_windows(conn, rest)
                spans = await usage_store.spans(conn)
            if early is None:
                side = _Side(spans, await usage_store.pending_items(conn, ids), await usage_store.taxes(conn, ids))
            await asyncio.gather(*(t for t in (usage_early, side_early, usage_rest) if t is not None))
        finally:  # returned early or failed: no read goes on behind the caller's back
            ahead = [t for t in (usage_early, side_early, usage_rest) if t is not None]
            for task in ahead:
                task.cancel()
            await asyncio.gather(*ahead, return_exceptions=True)
    seconds = {} if usage_rest is None else usage_rest.result()
    if usage_early is not None and side_early is not None:  # the guessed period's tenants, read ahead
        side = side_early.result()
        read_early = usage_early.result()
        for w in todo:
            if (w.start, w.end) == early:
                if (found := read_early.get(w.tenant_id)) is not None:
                    seconds[w.tenant_id] = found
                if (shared := side.spans.get(w.tenant_id)) is not None:
                    spans[w.tenant_id] = shared
    assert side is not None
    return ChunkInputs(ids, by_id, work.cycles, seconds, spans, side.items, side.taxes, currency(), work.skipped,
                       work.done)


async def _early(conn: Connection, lookup: TermsLookup, chunk: list[str], now: datetime) -> Period | None:
    found = await lookup(conn, chunk[::max(1, len(chunk) // SAMPLE)], now)
    periods = {(c.start, c.end) for c in found.values() if c.end <= now}
    return periods.pop() if len(periods) == 1 else None


async def _side(conn: Connection, period: Period, of: list[str] | None, chunk: list[str]) -> _Side:
    return _Side(await usage_store.period_spans(conn, period[0], period[1], of),
                 await usage_store.pending_items(conn, chunk), await usage_store.taxes(conn, chunk))


async def _on(pool: asyncpg.Pool, snapshot: str, read: Callable[[Connection], Awaitable[T]]) -> T:
    """``read`` on a connection of its own, in ``snapshot``."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        await usage_store.use_snapshot(conn, snapshot)
        await usage_store.plan_per_call(conn)
        return await read(conn)


@dataclass(frozen=True)
class _Todo:
    """The chunk's cycles ended at ``now``; of their windows, those not invoiced yet (``todo``,
    their tenants in ``ids`` by partner); how many tenants have no cycle and how many are done."""

    cycles: dict[str, Cycle]
    todo: list[Window]
    ids: list[str]
    skipped: int
    done: int

    def nothing(self, by_id: dict[str, TenantRow]) -> ChunkInputs:
        return ChunkInputs([], by_id, self.cycles, {}, {}, {}, {}, currency(), self.skipped, self.done)


async def _todo(conn: Connection, by_id: dict[str, TenantRow], chunk: list[str], now: datetime,
                lookup: TermsLookup) -> _Todo:
    cycles: dict[str, Cycle] = {}
    found = await lookup(conn, chunk, now)
    for tid in chunk:
        cycle = found.get(tid)
        if cycle is not None and cycle.end <= now and cycle.end > by_id[tid].created_at:
            cycles[tid] = cycle
    windows = [Window(tid, c.start, c.end) for tid, c in cycles.items()]
    done = await usage_store.invoiced(conn, windows) if windows else set()
    todo = [w for w in windows if w.tenant_id not in done]
    ids = sorted((w.tenant_id for w in todo), key=lambda tid: (by_id[tid].partner_id, tid))
    return _Todo(cycles, todo, ids, len(chunk) - len(cycles), len(done))


async def _read_inline(conn: Connection, by_id: dict[str, TenantRow], chunk: list[str], now: datetime,
                       lookup: TermsLookup, every_tenant: bool) -> ChunkInputs:
    found = await _todo(conn, by_id, chunk, now, lookup)
    if not found.ids:
        return found.nothing(by_id)
    ids = found.ids
    await usage_store.load_windows(conn, found.todo)
    seconds = await usage_store.seconds_by_class(conn, found.todo, every_tenant=every_tenant)
    return ChunkInputs(ids, by_id, found.cycles, seconds, await usage_store.spans(conn),
                       await usage_store.pending_items(conn, ids), await usage_store.taxes(conn, ids), currency(),
                       found.skipped, found.done)
