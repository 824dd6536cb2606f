"""What the invoice job reads for a chunk of tenants, from one consistent snapshot, in a few
set-based statements over up to two connections (docs/invoices.md "Speed").

The chunk's first connection opens a repeatable read transaction and exports its snapshot; the
other connection imports it (``pg_export_snapshot`` / ``SET TRANSACTION SNAPSHOT``), so every
input is read as of one moment. Usage (the period's counters) and unit history need the tenants'
periods, which need their terms (the lookup, mostly Python). So a sample of the tenants is looked
up first: when they share one period (the calendar month of PAYG tenants, most often), that
period's unit history, credits and taxes are read on the other connection while the first one
looks every tenant up. A tenant with another period after all gets its unit history read apart
(a windows table and a join); when the sample has several periods, nothing is read ahead."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol, TypeVar

import asyncpg

from cdr_ingest.cycles import period_key
from controlplane.db.connection import Connection
from controlplane.invoices import store, usage_store
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
    """``every_tenant``: the chunk is every tenant (the run's only chunk), so a period's unit
    history is read with no tenant filter."""
    by_id = {t.tenant_id: t for t in tenants}
    chunk = [t.tenant_id for t in tenants]
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        await usage_store.plan_per_call(conn)
        if pool.get_max_size() < 2:  # no second connection to read beside this one
            return await _read_inline(conn, by_id, chunk, now, lookup)
        snapshot = await usage_store.export_snapshot(conn)
        side_early: asyncio.Task[_Side] | None = None
        side: _Side | None = None
        try:
            early = await _early(conn, lookup, chunk, now)
            if early is not None:
                of = None if every_tenant else chunk
                side_early = asyncio.create_task(_on(pool, snapshot, lambda c: _side(c, early, of, chunk)))
            work = await _todo(conn, by_id, chunk, now, lookup)
            if not work.ids:
                return work.nothing(by_id)
            todo, ids = work.todo, work.ids
            seconds = await usage_store.period_usage(conn, _keys(todo, by_id))
            rest = todo if early is None else [w for w in todo if (w.start, w.end) != early]
            spans: dict[str, list[UnitSpan]] = {}
            if rest:
                await usage_store.load_windows(conn, rest)
                spans = await usage_store.spans(conn)
            if early is None:
                side = _Side(spans, await usage_store.pending_items(conn, ids), await usage_store.taxes(conn, ids))
            elif side_early is not None:
                await side_early
        finally:  # returned early or failed: no read goes on behind the caller's back
            if side_early is not None:
                side_early.cancel()
                await asyncio.gather(side_early, return_exceptions=True)
    if side_early is not None:  # the guessed period's tenants, read ahead
        side = side_early.result()
        for w in todo:
            if (w.start, w.end) == early and (shared := side.spans.get(w.tenant_id)) is not None:
                spans[w.tenant_id] = shared
    assert side is not None
    return ChunkInputs(ids, by_id, work.cycles, seconds, spans, side.items, side.taxes, currency(), work.skipped,
                       work.done)


def _keys(todo: list[Window], by_id: dict[str, TenantRow]) -> list[tuple[str, date]]:
    """Each window's (tenant, period key): its usage counters' key."""
    keys: dict[tuple[datetime, str], date] = {}  # a chunk has a few (start, time zone) pairs
    out: list[tuple[str, date]] = []
    for w in todo:
        tz = by_id[w.tenant_id].timezone
        key = keys.get((w.start, tz))
        if key is None:
            key = keys[(w.start, tz)] = period_key(w.start, tz)
        out.append((w.tenant_id, key))
    return out


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
    done = {t for t, _ in await store.cycles_invoiced(conn, [(w.tenant_id, w.start) for w in windows])}
    todo = [w for w in windows if w.tenant_id not in done]
    ids = sorted((w.tenant_id for w in todo), key=lambda tid: (by_id[tid].partner_id, tid))
    return _Todo(cycles, todo, ids, len(chunk) - len(cycles), len(done))


async def _read_inline(conn: Connection, by_id: dict[str, TenantRow], chunk: list[str], now: datetime,
                       lookup: TermsLookup) -> ChunkInputs:
    found = await _todo(conn, by_id, chunk, now, lookup)
    if not found.ids:
        return found.nothing(by_id)
    ids = found.ids
    seconds = await usage_store.period_usage(conn, _keys(found.todo, by_id))
    await usage_store.load_windows(conn, found.todo)
    return ChunkInputs(ids, by_id, found.cycles, seconds, await usage_store.spans(conn),
                       await usage_store.pending_items(conn, ids), await usage_store.taxes(conn, ids), currency(),
                       found.skipped, found.done)
