"""Writes what the call flow decides: progress events, and for a finished call its
record, wallet debit, usage and terminal event.

ONE writer, fed in arrival order, commits whatever is queued (up to ``_BATCH``
actions) as ONE transaction (group commit), in rounds of at most one action per
call: the round's new ``calls_active`` rows in one statement, its answers in one,
its finished calls' records in one insert (``ON CONFLICT DO NOTHING``: only the new
ones count), ONE debit per partner and ONE usage update per tenant/cycle/class, the
ledger entries and the events in one statement each. A burst of hang-ups thus
costs a few statements and one commit instead of one contended transaction per
call. When a batch fails it is replayed one transaction per action, so one bad
call cannot block the rest; a write that keeps failing is dropped after a few
tries: Asterisk's CDR (reconciler) still has it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import date

import asyncpg
import structlog

from cdr_ingest.callflow import Action, CallSummary, Finished, Progress, ProgressKind
from cdr_ingest.pricing import INCLUDED_CLASSES
from cdr_ingest.rates import RateDeck
from cdr_ingest.records import (CallRecord, TenantBilling, build_record, progress_event,
                                progress_view, terminal_event)
from controlplane.calls import store
from controlplane.calls.billing import BillingContexts
from controlplane.events import emit
from controlplane.events.emit import PendingEvent, emit_many
from controlplane.recordings import store as recordings_store
from controlplane.wallet.models import Entry, call_reference, usage_kind
from provisioning.names import channel_extension

log = structlog.get_logger(__name__)
_ATTEMPTS = 3
_BATCH = 256  # at most this many queued actions share one transaction
# A call's start and answer wait up to this long for company (fewer, larger
# transactions under load); an end is written at once, with whatever waits.
PROGRESS_LINGER = 0.02
_INCLUDED = tuple(sorted(c.value for c in INCLUDED_CLASSES))
_INCLUDED_KEYS = 50_000  # counters kept before the cache starts over (each reloads on demand)


def _recordings(media: dict[str, list[str]], record: CallRecord) -> dict[str, object]:
    """``recordings`` of a call's terminal event (controlplane/recordings): each recording's id
    and download route; nothing when the call was not recorded (or for a billed leg)."""
    ids = [] if getattr(record, "leg", "") else media.get(record.linkedid, [])
    if not ids:
        return {}
    return {"recordings": [{"id": rid, "audio": f"/v1/tenants/{record.tenant_id}/recordings/{rid}/audio"}
                           for rid in ids]}


def _usage_entry(record: CallRecord) -> Entry:
    """The call's wallet debit (its wholesale cost), once per call (docs/wallet.md)."""
    return Entry(record.partner_id, usage_kind(record.call_class), -(record.wholesale_micros or 0),
                 call_reference(record.id), tenant_id=record.tenant_id, call_id=record.id,
                 occurred_at=record.started_at)


class CallRecorder:
    def __init__(self, pool: asyncpg.Pool, *, wholesale_deck: RateDeck | None = None,
                 billing_ttl: float = 5.0) -> None:
        # One writer, group commit: concurrent writers queue behind each other's wallet
        # and usage row locks.
        self.pool = pool
        self.billings = BillingContexts(wholesale_deck=wholesale_deck, ttl=billing_ttl)
        self._queue: asyncio.Queue[Action] = asyncio.Queue()
        self._ended = asyncio.Event()  # a Finished is queued: no lingering
        self.recorded = 0
        # Called (sync) after a call's record committed; the calls plugin connects the
        # ``call_recorded`` signal here (controlplane/limits re-evaluates caps).
        self.on_recorded: list[Callable[[CallRecord], None]] = []
        # (tenant, period) -> billable seconds so far in the classes included minutes cover:
        # read once from tenant_usage, then kept here by the one writer, so pricing a call
        # within its period's bundle costs no statement (docs/profiles.md). Dropped on any
        # failure: a rolled-back batch must not leave its seconds counted.
        self._included: dict[tuple[str, date], int] = {}

    # ------------------------------------------------------------ intake (sync, from the tracker)

    def submit(self, actions: list[Action]) -> None:
        for action in actions:
            self._queue.put_nowait(action)
            if isinstance(action, Finished):
                self._ended.set()

    def backlog(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if not self._ended.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PROGRESS_LINGER):  # wait_for (3.11) can lose a cancel
                        await self._ended.wait()
            self._ended.clear()
            while len(batch) < _BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if not self._queue.empty():  # more than a batch waits: no lingering for the rest
                self._ended.set()
            await self.write_batch(batch)

    async def write_batch(self, batch: list[Action]) -> None:
        """Group commit: the whole batch in one transaction, then the hooks of the calls it
        recorded; on a failure, one transaction per action (in order) instead."""
        try:
            async with self.pool.acquire() as conn:
                async with conn.transaction():
                    records = await self._write_batch(conn, batch)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("calls.batch_failed", actions=len(batch))
            self._included.clear()
            for action in batch:
                await self._retry(action, 1)
            return
        self.recorded += len(records)
        self._after(records)

    async def _write_batch(self, conn: store.Conn, batch: list[Action]) -> list[CallRecord]:
        """The batch in rounds of at most one action per call, in arrival order: a call's
        later action goes to a later round, so its writes and events keep their order."""
        recorded: list[CallRecord] = []
        round_: list[Action] = []
        seen: set[str] = set()
        for action in batch:
            call_id = action.summary.call_id if isinstance(action, Finished) else action.call_id
            if call_id in seen:
                recorded += await self._write_round(conn, round_)
                round_, seen = [], set()
            round_.append(action)
            seen.add(call_id)
        recorded += await self._write_round(conn, round_)
        return recorded

    async def _write_round(self, conn: store.Conn, actions: list[Action]) -> list[CallRecord]:
        """Actions of distinct calls: new calls_active rows in one statement, answers in one,
        finished calls together (``_finish_many``), then all their events in one insert."""
        initiated: list[tuple[Progress, TenantBilling]] = []
        answered: list[tuple[Progress, TenantBilling]] = []
        finished: list[tuple[CallSummary, TenantBilling]] = []
        for action in actions:
            tenant_id = action.summary.tenant_id if isinstance(action, Finished) else action.tenant_id
            billing = await self.billing(conn, tenant_id)
            if billing is None:
                call_id = action.summary.call_id if isinstance(action, Finished) else action.call_id
                log.warning("calls.unknown_tenant", call_id=call_id, tenant_id=tenant_id)
            elif isinstance(action, Finished):
                finished.append((action.summary, billing))
            elif action.kind is ProgressKind.ANSWERED:
                answered.append((action, billing))
            else:
                initiated.append((action, billing))
        events: list[PendingEvent] = []
        if initiated:
            sent = await store.insert_active_many(conn, [
                (p.call_id, progress_view(p.call_id, p.tenant_id, p.inbound, p.dialed, p.caller_num,
                                          p.started_at, None).id,
                 p.tenant_id, b.partner_id, p.inbound, p.dialed, p.caller_num, p.started_at)
                for p, b in initiated])
            events += [self._progress_event(p, b, False) for p, b in initiated if p.call_id in sent]
        if answered:
            sent = await store.mark_answered_many(conn, [(p.call_id, p.at) for p, _ in answered])
            events += [self._progress_event(p, b, True) for p, b in answered if p.call_id in sent]
        recorded = await self._finish_many(conn, finished, events)
        if events:
            await emit_many(conn, events)
        return recorded

    @staticmethod
    def _progress_event(p: Progress, billing: TenantBilling,
                        answered: bool) -> PendingEvent:
        view = progress_view(p.call_id, p.tenant_id, p.inbound, p.dialed, p.caller_num, p.started_at,
                             p.at if answered else None)
        return progress_event(p.inbound, answered), billing.partner_id, p.tenant_id, {"call": view}

    async def _finish_many(self, conn: store.Conn, calls: list[tuple[CallSummary, TenantBilling]],
                           events: list[PendingEvent]) -> list[CallRecord]:
        """``finish`` for several calls (distinct call ids): the same rows, in a few statements;
        their events are appended to ``events`` (the caller inserts them). The records that
        were new, in the order given."""
        if not calls:
            return []
        records, keys = await self._build(conn, calls)
        won = await store.record_calls(conn, records)
        media = await recordings_store.recording_ids(conn, [r.linkedid for r in records])
        for record, key in zip(records, keys, strict=True):
            if key is not None and (record.linkedid, record.leg) not in won:
                self._included.pop(key, None)  # counted for a call recorded before: read again
        debits: list[Entry] = []
        usage: dict[tuple[str, date, str], store.UsageSum] = {}
        new: list[CallRecord] = []
        for (summary, billing), record in zip(calls, records, strict=True):
            found = won.get((record.linkedid, record.leg))
            if found is None:
                continue
            active, answered_sent = found
            new.append(record)
            late = record.late
            inbound = record.direction == "inbound"
            # A leg of a call (docs/queues.md) has no progress events of its own: its record only.
            if not active and not record.leg:
                view = progress_view(summary.call_id, record.tenant_id, inbound, summary.dialed,
                                     summary.caller_num, record.started_at, None)
                events.append((progress_event(inbound, False), record.partner_id, record.tenant_id,
                               {"call": view, "late": True}))
            if record.answered_at is not None and not (active and answered_sent) and not record.leg:
                view = progress_view(summary.call_id, record.tenant_id, inbound, summary.dialed,
                                     summary.caller_num, record.started_at, record.answered_at)
                events.append((progress_event(inbound, True), record.partner_id, record.tenant_id,
                               {"call": view, "late": late or not active}))
            events.append((terminal_event(record), record.partner_id, record.tenant_id,
                           {"call": record, "late": late, **_recordings(media, record)}))
            if record.wholesale_micros:
                debits.append(_usage_entry(record))
            usage_key = (record.tenant_id, billing.cycle(record.started_at), record.call_class)
            sums = usage.get(usage_key)
            if sums is None:
                sums = usage[usage_key] = store.UsageSum()
            sums.calls += 1
            sums.answered_s += record.answered_s
            sums.billable_s += record.billable_s
            sums.retail += record.retail_micros or 0
            sums.wholesale += record.wholesale_micros or 0
        if new:
            await store.settle_many(conn, debits, usage)
        for record in new:
            log.debug("calls.recorded", call_id=record.linkedid, tenant_id=record.tenant_id,
                      disposition=record.disposition, direction=record.direction,
                      call_class=record.call_class, retail=record.retail_micros, late=record.late)
        return new

    async def _build(self, conn: store.Conn, calls: list[tuple[CallSummary, TenantBilling]]
                     ) -> tuple[list[CallRecord], list[tuple[str, date] | None]]:
        """The calls' records, in order, each priced at the margin of its period's included
        minutes; and the (tenant, period) counter each moved (None: no bundle)."""
        records: list[CallRecord] = []
        keys: list[tuple[str, date] | None] = []
        for summary, billing in calls:
            profile = billing.profile_at(summary.started_at)
            if profile is None or profile.included_minutes <= 0:
                records.append(build_record(summary, billing, channel_extension))
                keys.append(None)
                continue
            key = (billing.tenant_id, billing.cycle(summary.started_at))
            used = self._included.get(key)
            if used is None:
                if len(self._included) >= _INCLUDED_KEYS:
                    self._included.clear()
                used = await store.included_used(conn, key[0], key[1], _INCLUDED)
            record = build_record(summary, billing, channel_extension, used)
            self._included[key] = used + (record.billable_s if record.call_class in _INCLUDED else 0)
            records.append(record)
            keys.append(key)
        return records, keys

    def _after(self, records: list[CallRecord]) -> None:
        for record in records:
            for hook in self.on_recorded:
                try:
                    hook(record)
                except Exception:
                    log.exception("calls.hook_failed", call_id=record.linkedid, tenant_id=record.tenant_id)

    async def _retry(self, action: Action, first: int) -> None:
        for attempt in range(first, _ATTEMPTS + 1):
            try:
                await self.handle(action)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("calls.write_failed", attempt=attempt)
                self._included.clear()
                await asyncio.sleep(0.2 * attempt)

    # ------------------------------------------------------------ decisions

    def forget(self, tenant_id: str | None) -> None:
        """Drop the cached billing context (its pricing just changed; None: every tenant's)."""
        if tenant_id is None:
            self.billings.forget_all()
        else:
            self.billings.forget(tenant_id)

    async def billing(self, conn: store.Conn, tenant_id: str) -> TenantBilling | None:
        return await self.billings(conn, tenant_id)

    async def handle(self, action: Action) -> None:
        """Write one action in its own transaction."""
        async with self.pool.acquire() as conn:
            await self._handle(conn, action)

    async def _handle(self, conn: store.Conn, action: Action) -> None:
        async with conn.transaction():
            record = await self._write(conn, action)
        if record is not None:  # committed
            self._after([record])

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
        (record,), (key,) = await self._build(conn, [(summary, billing)])
        # Record + calls_active row, then wallet + usage: two statements (was five).
        try:
            recorded, active, answered_sent = await store.record_call(conn, record)
        except BaseException:
            self._included.clear()
            raise
        if not recorded:
            if key is not None:
                self._included.pop(key, None)
            return None
        late = record.late
        inbound = record.direction == "inbound"
        # never announced: it started and ended while we were away (a leg never is: docs/queues.md)
        if not active and not record.leg:
            view = progress_view(summary.call_id, record.tenant_id, inbound, summary.dialed,
                                 summary.caller_num, record.started_at, None)
            await emit(conn, progress_event(inbound, False), partner_id=record.partner_id,
                       tenant_id=record.tenant_id, data={"call": view, "late": True})
        if record.answered_at is not None and not (active and answered_sent) and not record.leg:
            view = progress_view(summary.call_id, record.tenant_id, inbound, summary.dialed,
                                 summary.caller_num, record.started_at, record.answered_at)
            await emit(conn, progress_event(inbound, True), partner_id=record.partner_id,
                       tenant_id=record.tenant_id, data={"call": view, "late": late or not active})
        sums = store.UsageSum(1, record.answered_s, record.billable_s, record.retail_micros or 0,
                              record.wholesale_micros or 0)
        await store.settle_many(conn, [_usage_entry(record)] if record.wholesale_micros else [],
                                {(record.tenant_id, billing.cycle(record.started_at), record.call_class): sums})
        media = await recordings_store.recording_ids(conn, [record.linkedid])
        await emit(conn, terminal_event(record), partner_id=record.partner_id, tenant_id=record.tenant_id,
                   data={"call": record, "late": late, **_recordings(media, record)})
        self.recorded += 1
        log.debug("calls.recorded", disposition=record.disposition, direction=record.direction,
                 call_class=record.call_class, retail=record.retail_micros, late=late)
        return record
