"""Nothing lost: calls in progress are picked up on (re)connect, and calls that
ended while the daemon was away are rebuilt from Asterisk's CDRs (cdr_pgsql).

Both paths end in ``CallRecorder.finish``, whose unique key on linkedid makes a
call counted once whichever path sees it first.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import structlog

from cdr_ingest.callflow import CallResumed
from cdr_ingest.cdr_rebuild import rebuild
from controlplane.asterisk.ami import AmiClient, AmiError
from controlplane.calls import failover_store, store
from controlplane.calls.ami_inputs import show_channels
from controlplane.calls.recorder import CallRecorder
from controlplane.calls.tracker import CallTracker

log = structlog.get_logger(__name__)


async def pickup(ami: AmiClient, tracker: CallTracker, pool: asyncpg.Pool) -> int:
    """Feed the calls Asterisk has up right now into the flow; returns how many were new."""
    try:
        reply = await ami.action({"Action": "CoreShowChannels"}, as_list=True, timeout=10.0)
    except (TimeoutError, AmiError) as exc:
        log.warning("calls.pickup_failed", error=str(exc) or type(exc).__name__)
        return 0
    now = datetime.now(UTC)
    found = show_channels(reply if isinstance(reply, list) else [reply], now)
    live = tracker.flow.live_call_ids()
    fresh = {k: v for k, v in found.items() if k not in live}
    if not fresh:
        return 0
    async with pool.acquire() as conn:
        persisted = {r["linkedid"]: r for r in await store.active_rows(conn, list(fresh))}
    for linkedid, (channels, up, started) in fresh.items():
        row = persisted.get(linkedid)
        tracker.feed(CallResumed(
            at=now, call_id=linkedid, channels=tuple(channels), up=up,
            started_at=row["started_at"] if row else started,
            answered_at=row["answered_at"] if row else None,
            answered_sent=bool(row and row["answered_sent"]), initiated_sent=row is not None,
            inbound=row["inbound"] if row else None, dialed=row["dialed"] if row else None,
            tenant_id=row["tenant_id"] if row else ""))
    log.info("calls.picked_up", calls=len(fresh))
    return len(fresh)


async def reconcile_once(pool: asyncpg.Pool, recorder: CallRecorder, tracker: CallTracker,
                         settle_seconds: float, batch: int = 500, node_id: str | None = None) -> int:
    """Record the calls Asterisk's CDRs know and we do not; returns how many.

    ``node_id`` (several nodes): calls still up on another live node are left to its daemon
    (a leg's CDR is written at the leg's hang-up, before the call ends)."""
    done = 0
    async with pool.acquire() as conn:
        await store.mark_recorded_cdrs(conn, settle_seconds)
        while True:
            rows = await store.unrecorded_cdrs(conn, settle_seconds, batch)
            if not rows:
                return done
            live = tracker.flow.live_call_ids()
            if node_id is not None:
                live |= await failover_store.live_elsewhere(conn, node_id, [r.linkedid for r in rows])
            linkedids = {r.linkedid for r in rows} - live
            summaries = [s for s in rebuild(rows, tracker.flow.config) if s.call_id not in live]
            for summary in summaries:
                with structlog.contextvars.bound_contextvars(call_id=summary.call_id,
                                                             tenant_id=summary.tenant_id):
                    billing = await recorder.billing(conn, summary.tenant_id)
                    async with conn.transaction():
                        if billing is not None and await recorder.finish(conn, summary, billing):
                            done += 1
                        await store.mark_cdrs_handled(conn, [summary.call_id])
            # Calls no tenant is billed for (no accountcode) are settled too.
            await store.mark_cdrs_handled(conn, sorted(linkedids))
            if len(linkedids) == 0:
                return done


async def reconcile_forever(pool: asyncpg.Pool, recorder: CallRecorder, tracker: CallTracker,
                            interval: float, settle_seconds: float, node_id: str | None = None) -> None:
    while True:
        recovered = await reconcile_once(pool, recorder, tracker, settle_seconds, node_id=node_id)
        if recovered:
            log.info("calls.reconciled", calls=recovered)
        await asyncio.sleep(interval)
