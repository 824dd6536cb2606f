"""Writes what the call flow decides: progress events, and for a finished call its
record, wallet debit, usage and terminal event in one transaction.

Calls are partitioned over a few writer queues by call id, so one call's writes
stay in order while different calls commit concurrently. A write that keeps
failing is dropped after a few tries: Asterisk's CDR (reconciler) still has it.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import structlog

from cdr_ingest.callflow import Action, CallSummary, Finished, Progress, ProgressKind
from cdr_ingest.pricing import BillingProfile
from cdr_ingest.rates import RateDeck, Rounding, load_deck_csv
from cdr_ingest.records import (CallRecord, TenantBilling, build_record, cycle_start, progress_event,
                                progress_view, terminal_event)
from cdr_ingest.tiers import Tier
from controlplane.calls import store
from controlplane.events import emit

log = structlog.get_logger(__name__)
_ATTEMPTS = 3
_BATCH = 64  # at most this many queued actions share one connection acquisition


@dataclass(frozen=True, slots=True)
class _Cached:
    billing: TenantBilling | None
    expires: float


class CallRecorder:
    def __init__(self, pool: asyncpg.Pool, *, writers: int = 4, wholesale_deck: RateDeck | None = None,
                 billing_ttl: float = 5.0) -> None:
        self.pool = pool
        self.wholesale_deck = wholesale_deck
        self.billing_ttl = billing_ttl
        self._queues: list[asyncio.Queue[Action]] = [asyncio.Queue() for _ in range(max(1, writers))]
        self._billing: dict[str, _Cached] = {}
        self._decks: dict[tuple[str, object], RateDeck] = {}
        self.recorded = 0
        # Called (sync) after a call's record committed: controlplane/limits re-evaluates caps.
        self.on_recorded: list[Callable[[CallRecord], None]] = []

    # ------------------------------------------------------------ intake (sync, from the tracker)

    def submit(self, actions: list[Action]) -> None:
        for action in actions:
            call_id = action.summary.call_id if isinstance(action, Finished) else action.call_id
            self._queues[zlib.crc32(call_id.encode()) % len(self._queues)].put_nowait(action)

    def backlog(self) -> int:
        return sum(q.qsize() for q in self._queues)

    async def run(self) -> None:
        await asyncio.gather(*(self._drain(q) for q in self._queues))

    async def _drain(self, queue: asyncio.Queue[Action]) -> None:
        """Write what is queued, one transaction per action, on one pooled connection per
        backlog: under load the acquire/reset round trips are paid once per batch, and a
        transaction holds the partner's wallet row only for its own call (batching several
        calls in one transaction made the writers queue behind that row)."""
        while True:
            batch = [await queue.get()]
            while len(batch) < _BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            done = 0
            try:
                async with self.pool.acquire() as conn:
                    for action in batch:
                        await self._handle(conn, action)
                        done += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("calls.write_failed", attempt=1)
                await asyncio.sleep(0.2)
                # The connection may be broken: this action's next tries and the rest on fresh ones.
                await self._retry(batch[done], 2)
                for action in batch[done + 1:]:
                    await self._retry(action, 1)

    async def _retry(self, action: Action, first: int) -> None:
        for attempt in range(first, _ATTEMPTS + 1):
            try:
                await self.handle(action)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("calls.write_failed", attempt=attempt)
                await asyncio.sleep(0.2 * attempt)

    # ------------------------------------------------------------ decisions

    def forget(self, tenant_id: str) -> None:
        """Drop the cached billing context (its profile just changed)."""
        self._billing.pop(tenant_id, None)

    async def billing(self, conn: store.Conn, tenant_id: str) -> TenantBilling | None:
        cached = self._billing.get(tenant_id)
        now = time.monotonic()
        if cached is not None and cached.expires > now:
            return cached.billing
        row = await store.tenant_billing(conn, tenant_id)
        billing = None if row is None else self._billing_from(row)
        self._billing[tenant_id] = _Cached(billing, now + self.billing_ttl)
        return billing

    def _billing_from(self, row: asyncpg.Record) -> TenantBilling:
        deck = None
        if row["deck_csv"] is not None:
            key = (row["partner_id"], row["deck_at"])
            deck = self._decks.get(key)
            if deck is None:
                deck = self._decks[key] = load_deck_csv(row["deck_csv"])
        profile = None
        if row["per_minute"] is not None:
            profile = BillingProfile(
                profile_id=row["tenant_id"], per_minute=row["per_minute"],
                local_per_minute=row["local_per_minute"], toll_free_per_minute=row["toll_free_per_minute"],
                international_per_minute=row["international_per_minute"], international_deck=deck,
                connect_fee=row["connect_fee"], min_seconds=row["min_seconds"],
                increment_seconds=row["increment_seconds"], rounding=Rounding(row["rounding"]),
                charge_inbound=row["charge_inbound"])
        return TenantBilling(row["tenant_id"], row["partner_id"], Tier(row["tier"].lower()), profile,
                             self.wholesale_deck)

    async def handle(self, action: Action) -> None:
        """Write one action in its own transaction."""
        async with self.pool.acquire() as conn:
            await self._handle(conn, action)

    async def _handle(self, conn: store.Conn, action: Action) -> None:
        async with conn.transaction():
            record = await self._write(conn, action)
        if record is not None:  # committed
            for hook in self.on_recorded:
                try:
                    hook(record)
                except Exception:
                    log.exception("calls.hook_failed", call_id=record.linkedid, tenant_id=record.tenant_id)

    async def _write(self, conn: store.Conn, action: Action) -> CallRecord | None:
        call_id = action.summary.call_id if isinstance(action, Finished) else action.call_id
        tenant_id = action.summary.tenant_id if isinstance(action, Finished) else action.tenant_id
        with structlog.contextvars.bound_contextvars(call_id=call_id, tenant_id=tenant_id):
            billing = await self.billing(conn, tenant_id)
            if billing is None:
                log.warning("calls.unknown_tenant")
                return None
            if isinstance(action, Finished):
                return await self.finish(conn, action.summary, billing)
            await self._progress(conn, action, billing)
            return None

    async def _progress(self, conn: store.Conn, p: Progress, billing: TenantBilling) -> None:
        answered = p.kind is ProgressKind.ANSWERED
        if answered:
            sent = await store.mark_answered(conn, p.call_id, p.at)
        else:
            sent = await store.insert_active(conn, p.call_id, progress_view(
                p.call_id, p.tenant_id, p.inbound, p.dialed, p.caller_num, p.started_at, None).id,
                p.tenant_id, billing.partner_id, p.inbound, p.dialed, p.caller_num, p.started_at)
        if sent:
            view = progress_view(p.call_id, p.tenant_id, p.inbound, p.dialed, p.caller_num, p.started_at,
                                 p.at if answered else None)
            await emit(conn, progress_event(p.inbound, answered), partner_id=billing.partner_id,
                       tenant_id=p.tenant_id, data={"call": view})

    async def finish(self, conn: store.Conn, summary: CallSummary, billing: TenantBilling) -> CallRecord | None:
        """Record, debit, count and announce one call; None if it was already recorded."""
        record = build_record(summary, billing)
        # Record + calls_active row, then wallet + usage: two statements (was five).
        recorded, active, answered_sent = await store.record_call(conn, record)
        if not recorded:
            return None
        late = record.late
        inbound = record.direction == "inbound"
        if not active:  # never announced: it started and ended while we were away
            view = progress_view(summary.call_id, record.tenant_id, inbound, summary.dialed,
                                 summary.caller_num, record.started_at, None)
            await emit(conn, progress_event(inbound, False), partner_id=record.partner_id,
                       tenant_id=record.tenant_id, data={"call": view, "late": True})
        if record.answered_at is not None and not (active and answered_sent):
            view = progress_view(summary.call_id, record.tenant_id, inbound, summary.dialed,
                                 summary.caller_num, record.started_at, record.answered_at)
            await emit(conn, progress_event(inbound, True), partner_id=record.partner_id,
                       tenant_id=record.tenant_id, data={"call": view, "late": late or not active})
        await store.settle(conn, record.partner_id, record.wholesale_micros or 0, record.id, record.tenant_id,
                           cycle_start(record.started_at), record.call_class, record.answered_s,
                           record.billable_s, record.retail_micros or 0, record.wholesale_micros or 0)
        await emit(conn, terminal_event(record), partner_id=record.partner_id, tenant_id=record.tenant_id,
                   data={"call": record, "late": late})
        self.recorded += 1
        log.debug("calls.recorded", disposition=record.disposition, direction=record.direction,
                 call_class=record.call_class, retail=record.retail_micros, late=late)
        return record
