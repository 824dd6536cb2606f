"""Failover records: calls that were up on a node that died are recorded by a survivor.

A node's Asterisk writes its CDRs at hang-up (cdr_pgsql); killed, it writes none, and its
daemon's tracker dies with it. What survives is ``calls_active`` (one row per call, written at
its start, answered_at set at answer, deleted in the transaction that records the call; each
row carries the node that wrote it). When a node's heartbeat lease expires, the daemon holding
the ``calls.failover`` lease records each of its rows as a call ended at the detected time of
death (the heartbeat's expiry), flagged in ``failover_records``. Exactly once: the record's
idempotency key (``call_records.linkedid``) refuses a second record whichever path comes
second (this job, the dead node's CDRs should its Asterisk have survived, a second survivor),
and the recording transaction locks the node's heartbeat row and re-checks it is still expired.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import structlog

from cdr_ingest.callflow import CallSummary
from controlplane.calls import failover_store as store
from controlplane.calls.recorder import CallRecorder
from controlplane.db.errors import DB_ERRORS

log = structlog.get_logger(__name__)
BATCH = 200


def summary_of(row: asyncpg.Record, died_at: datetime) -> CallSummary:
    """The call as its persisted state knew it, ended at ``died_at``."""
    started: datetime = row["started_at"]
    answered: datetime | None = row["answered_at"]
    ended = max(died_at, answered or started, started)
    return CallSummary(
        call_id=row["linkedid"], tenant_id=row["tenant_id"], inbound=row["inbound"], trunk_used=False,
        dialed=row["dialed"], caller_num=row["caller_num"], caller_channel="", answered_by="",
        started_at=started, answered_at=answered, ended_at=ended, dial_status="", hangup_cause=0,
        late=True)


async def record_dead_nodes(pool: asyncpg.Pool, recorder: CallRecorder, this_node: str, recorded_by: str) -> int:
    """Record the in-progress calls of every dead node; returns how many records were written."""
    written = 0
    async with pool.acquire() as conn:
        for node_id, died_at in await store.dead_nodes(conn, this_node):
            calls = 0
            while rows := await store.calls_of(conn, node_id, BATCH):
                done = await _record(conn, recorder, node_id, died_at, rows, recorded_by)
                if done is None:  # the node came back: its own daemon has its calls again
                    break
                calls += done
            written += calls
            log.warning("calls.failover_recorded", node=node_id, died_at=died_at.isoformat(), calls=calls)
    return written


async def _record(conn: store.Conn, recorder: CallRecorder, node_id: str, died_at: datetime,
                  rows: list[asyncpg.Record], recorded_by: str) -> int | None:
    done = 0
    for row in rows:
        summary = summary_of(row, died_at)
        billing = await recorder.billing(conn, summary.tenant_id)
        async with conn.transaction():
            if not await store.still_dead(conn, node_id):
                return None
            await store.as_node(conn, node_id)
            record = await recorder.finish(conn, summary, billing) if billing is not None else None
            if record is not None:
                await store.flag(conn, summary.call_id, node_id, died_at, recorded_by)
                done += 1
            await store.drop_active(conn, summary.call_id)  # recorded before, or no tenant to bill
    return done


async def failover_forever(pool: asyncpg.Pool, recorder: CallRecorder, this_node: str, recorded_by: str,
                           interval: float) -> None:
    """Background job (under the ``calls.failover`` lease): look for dead nodes every ``interval``."""
    while True:
        try:
            await record_dead_nodes(pool, recorder, this_node, recorded_by)
        except DB_ERRORS:
            log.warning("calls.failover_failed", exc_info=True)
        await asyncio.sleep(interval)
