"""The delivery worker: dispatch the outbox, attempt deliveries, record them.

Loops share one process. The dispatcher (dispatcher.py: one worker at a time) stamps
positions on committed events and fans them out into its lane (lane.py): first attempts made
from memory. The pump records finished attempts in batches (a lane attempt's row is written
then, once) and fills the slots they freed, bounded per endpoint and overall: from the lane,
and from the rows due (retries, redeliveries, what the lane handed over), claimed with a
lease; on one connection it holds while there is work. A fixed set of senders (one per slot)
make the attempts. Nothing sleeps until a due time: the database holds the schedule, and
the pump polls it, woken early by NOTIFY and by finished attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from controlplane.db.errors import DB_ERRORS
from controlplane.db.listen import listen_forever
from controlplane.events import emit, store as events_store
from controlplane.metrics import families as metrics
from controlplane.secret_box import SecretBox
from controlplane.shared.clock import Clock
from controlplane.webhooks import delivery_store, lane_store, schedule, store
from controlplane.webhooks.dispatcher import Dispatcher, wait_set
from controlplane.webhooks.lane import Lane
from controlplane.webhooks.models import DeliveryStatus, Job, Outcome
from controlplane.webhooks.resolver import Resolve, system_resolve
from controlplane.webhooks.sender import Sender
from controlplane.webhooks.settings import Settings

log = structlog.get_logger(__name__)

RECORD_BATCH = 500
RECORD_TRIES = 3
# Records and claims wait this long for company: bigger batches, fewer round trips; not when
# this many attempts have finished already (a busy pump's last cycle gathered them: waiting
# more would keep their slots empty longer).
COALESCE = 0.002
COALESCED = 16
# Only the lane's outcomes waiting (their slots are free already): record them in bigger batches.
LANE_COALESCE = 0.01
LANE_COALESCED = 128
# The pump's held connection, set once per session rather than once per transaction (a round
# trip each), and taken back off before the connection goes back to the pool (whose release runs
# no reset query: database.py), so no other user of the pool inherits it. No flush wait (why:
# dispatcher.NO_FLUSH_WAIT); and no
# bitmap scans: the claim's in-flight count must walk the leased index with a plain index scan,
# which marks the dead entries every record leaves there and then skips them (delivery_store),
# where the planner's estimate (a handful of rows) picks a bitmap scan that visits them all.
# The pump's other statements find rows by key and never use a bitmap scan.
PUMP_SESSION = "SET synchronous_commit TO off; SET enable_bitmapscan TO off"
PUMP_SESSION_END = "RESET synchronous_commit; RESET enable_bitmapscan"
# A claim outlives the attempt's timeout by this much before another worker may retry it.
LEASE_MARGIN = timedelta(seconds=5)
# While the lane fills every free slot, due rows are still claimed at least this often (retries
# and redeliveries are not starved by a busy lane); a claim that found rows runs every cycle.
CLAIM_EVERY_S = 0.1


@dataclass
class Worker:
    pool: asyncpg.Pool
    settings: Settings
    box: SecretBox
    resolve: Resolve = system_resolve
    clock: Clock = field(default_factory=Clock)
    poll_interval: float = 1.0
    # Commits come in bursts (a busy call recorder commits ~100 times a second): waiting
    # this long after a wake sequences a burst in one transaction rather than one each.
    dispatch_linger: float = 0.02
    owner: str = field(default_factory=lambda: f"wk_{secrets.token_hex(6)}")

    def __post_init__(self) -> None:
        self._due = asyncio.Event()      # something may be claimable, or an attempt finished
        self._results: list[Outcome] = []  # finished attempts, not recorded yet
        self._jobs: asyncio.Queue[tuple[Job, float]] = asyncio.Queue()  # claimed, for the senders
        self._in_flight: set[int] = set()  # claimed and not recorded yet (queued, sending or finished)
        self._claimed: Counter[str] = Counter()  # those per endpoint
        self._lane_sending = 0  # taken from the lane, attempt not ended
        self._claim_at = 0.0  # monotonic time of the next claim while the lane fills the slots
        self.dispatcher = Dispatcher(self.pool, Lane(self.settings.per_endpoint_concurrency),
                                     lambda: self.clock.offset, work=self._due.set, failed=self._count_error,
                                     poll_interval=self.poll_interval, linger=self.dispatch_linger)
        self._conn: PoolConnectionProxy | None = None  # the pump's, held while there is work
        self._sender = Sender(self.settings, self.box, self.resolve)
        self._log = log.bind(worker=self.owner)
        self.errors = 0  # database errors survived (logged); tests expect none

    def wake(self) -> None:
        """Look at the outbox and the schedule now (tests call it after moving the clock)."""
        self.dispatcher.events.set()
        self._due.set()

    def _count_error(self) -> None:
        self.errors += 1

    async def run(self) -> None:
        await self._sender.start()
        self._log.info("webhooks.worker_started")
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._listen())
                group.create_task(self.dispatcher.run())
                group.create_task(self._pump_loop())
                # One sender per slot, for the worker's life: a task per attempt cost its
                # creation, a done callback and a set of live tasks, thousands of times a second.
                for _ in range(self.settings.max_concurrency):
                    group.create_task(self._send_loop())
        finally:
            await self._release()
            await self._sender.close()

    async def _listen(self) -> None:
        """Hold a LISTEN connection; if it drops, polling covers until it is back."""
        await listen_forever(self.pool, events_store.NOTIFY_CHANNEL, self._notified, period=self.poll_interval,
                             on_listening=self.dispatcher.events.set,
                             on_lost=lambda: self._log.warning("webhooks.listen_lost", exc_info=True))

    def _notified(self, *_: object) -> None:
        self.dispatcher.events.set()

    async def _guarded(self, what: str, step: Callable[[], Awaitable[bool]]) -> bool:
        """Run a database step; on a database error log it and give up this round (it is retried)."""
        try:
            return await step()
        except DB_ERRORS:
            self.errors += 1
            self._log.exception("webhooks.step_failed", step=what)
            await asyncio.sleep(min(self.poll_interval, 1.0))
            return False

    async def _pump_loop(self) -> None:
        """Record what finished, then fill the freed slots (due rows, then the lane), on one
        held connection.

        A claimed row's slot is idle from its attempt's end until the next claim fills it: here
        that is one cycle (record transaction, claim statement). Two loops on pooled connections
        made it a record transaction, a wake-up, a coalescing pause and a claim transaction, with
        a pool acquire and reset each; two loops on held connections ran side by side and measured
        worse on two cores (docs/performance.md). A lane attempt's slot is free when the attempt
        ends (a sender takes the lane's next head itself), so its outcome can wait longer for
        company: bigger batches, fewer statements.
        """
        while True:
            if not self._results:
                await wait_set(self._due, self.poll_interval)
            self._feed()  # new lane work starts now, not after the pause below
            pause, enough = (COALESCE, COALESCED) if self._in_flight else (LANE_COALESCE, LANE_COALESCED)
            if len(self._results) < enough:
                await asyncio.sleep(pause)  # let a few more finish: one round trip records them all
            self._due.clear()
            batch, self._results = self._results[:RECORD_BATCH], self._results[RECORD_BATCH:]
            if batch:
                await self._record_batch(batch)
            await self._guarded("claim", self._fill)
            if not self._in_flight and not self._results and not self._lane_sending \
                    and not self.dispatcher.lane.queued:
                await self._release()  # idle: the pool gets its connection back

    async def _connection(self) -> PoolConnectionProxy:
        if self._conn is None:
            conn = await self.pool.acquire()
            try:
                await conn.execute(PUMP_SESSION)
            except BaseException:
                await self.pool.release(conn)
                raise
            self._conn = conn
        return self._conn

    async def _release(self) -> None:
        """Hand the held connection back (after an error too: the pool discards a broken one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.execute(PUMP_SESSION_END)
            except DB_ERRORS:
                # the settings may still be on it: closed, never handed to another user
                conn.terminate()
            with contextlib.suppress(*DB_ERRORS):
                await self.pool.release(conn)

    def _room(self) -> int:
        return self.settings.max_concurrency - len(self._in_flight) - self._lane_sending

    async def _fill(self) -> bool:
        """Fill the free slots: due rows (every cycle while there are some, else every
        CLAIM_EVERY_S while the lane has work), then the lane."""
        lane = self.dispatcher.lane
        if self._room() > 0 and (not lane.queued or time.monotonic() >= self._claim_at):
            await self._claim(self._room())
        if self._room() > 0 and lane.queued:
            try:
                await self.dispatcher.check_endpoints(await self._connection())
            except DB_ERRORS:
                await self._release()
                raise
            self._feed()
        return False

    def _feed(self) -> None:
        """The lane's heads into the free slots."""
        room = self._room()
        if room > 0 and self.dispatcher.lane.queued:
            for job in self._take(room):
                self._jobs.put_nowait(job)

    def _take(self, room: int) -> list[tuple[Job, float]]:
        """Up to ``room`` of the lane's heads, counted as sending until their attempts end."""
        taken = self.dispatcher.take(room, self._claimed)
        self._lane_sending += len(taken)
        return taken

    async def _claim(self, room: int) -> None:
        lease = timedelta(seconds=self.settings.timeout) + LEASE_MARGIN
        # One statement, its own transaction: nothing to group it with.
        try:
            jobs = await delivery_store.claim(
                await self._connection(), owner=self.owner, offset=self.clock.offset,
                exclude=sorted(self._in_flight), per_endpoint=self.settings.per_endpoint_concurrency,
                limit=room, lease=lease, busy=self.dispatcher.lane.busy())
        except DB_ERRORS:
            await self._release()
            raise
        claimed = time.monotonic()
        self._claim_at = claimed if jobs else claimed + CLAIM_EVERY_S
        for job in jobs:
            assert job.delivery_id is not None
            self._in_flight.add(job.delivery_id)
            self._claimed[job.endpoint_id] += 1
            self._jobs.put_nowait((job, claimed))

    async def _send_loop(self) -> None:
        while True:
            if self._jobs.empty() and self._room() > 0:  # straight from the lane: no pump cycle between
                taken = self._take(1)
                job, claimed = taken[0] if taken else await self._jobs.get()
            else:
                job, claimed = await self._jobs.get()
            started = time.monotonic()
            attempted_at = job.claimed_at + timedelta(seconds=started - claimed)
            outcome = await self._sender.attempt(job, attempted_at)  # never raises for a failed attempt
            metrics.WEBHOOK_ATTEMPT_SECONDS.observe(time.monotonic() - started)
            if job.delivery_id is None:  # the lane's: the group's next may start
                self._lane_sending -= 1
                self.dispatcher.lane.ended(job)
            self._results.append(outcome)
            self._due.set()

    async def _record_batch(self, batch: list[Outcome]) -> None:
        for attempt in range(RECORD_TRIES):
            try:
                await self._record(batch)
                break
            except DB_ERRORS:
                # A deadlock victim or a lost connection: the outcomes are still ours to
                # record while the leases hold. After that, the deliveries are retried.
                self.errors += 1
                self._log.exception("webhooks.record_failed", outcomes=len(batch), attempt=attempt + 1)
                await self._release()
                await asyncio.sleep(0.2 * (attempt + 1))
        for outcome in batch:
            job = outcome.job
            if job.delivery_id is not None:
                self._in_flight.discard(job.delivery_id)
                self._claimed[job.endpoint_id] -= 1
                if not self._claimed[job.endpoint_id]:
                    del self._claimed[job.endpoint_id]

    async def _record(self, outcomes: list[Outcome]) -> None:
        rows = [(o, *_next_state(o)) for o in outcomes]
        stored = [r for r in rows if r[0].job.delivery_id is not None]
        lane = [r for r in rows if r[0].job.delivery_id is None]
        cursor = self.dispatcher.cursor_due()
        conn = await self._connection()
        if not stored and all(o.ok for o in outcomes):
            # The common batch: the lane's deliveries, all delivered. One statement, its own
            # transaction; a success can only reset a failure counter, never trip one.
            kept: set[int] = set()
            tripped: list[store.Tripped] = []
            if await lane_store.record(conn, lane, self.clock.offset, cursor):
                await store.tally_attempts(conn, _tallies(outcomes), schedule.AUTO_DISABLE_AFTER)
        else:
            async with conn.transaction():
                recorded = await delivery_store.record(conn, stored, owner=self.owner, offset=self.clock.offset)
                lane_counting = await lane_store.record(conn, lane, self.clock.offset, cursor)
                kept = recorded.kept
                counted = [o for o in outcomes if o.job.delivery_id is None or o.job.delivery_id in kept]
                # The tally changes a counter only after a failure or where one is above 0: a round
                # trip saved on the common all-delivered batch to healthy endpoints.
                needed = recorded.counting or lane_counting or not all(o.ok for o in counted)
                tripped = await store.tally_attempts(conn, _tallies(counted) if needed else [],
                                                     schedule.AUTO_DISABLE_AFTER)
                for trip in tripped:
                    endpoint = trip.endpoint
                    await emit(conn, "webhook_endpoint.disabled", partner_id=endpoint.partner_id, data={
                        "webhook_endpoint": {"id": endpoint.id, "url": endpoint.url,
                                             "description": endpoint.description,
                                             "consecutive_failures": endpoint.consecutive_failures,
                                             "disabled_reason": "consecutive_failures"}})
        if lane:
            self.dispatcher.written(cursor)
            self.dispatcher.lane.recorded(o.job.position for o, _, _ in lane)
        delivered = 0
        for outcome, status, delay in rows:
            lost = outcome.job.delivery_id is not None and outcome.job.delivery_id not in kept
            if outcome.ok and not lost:
                delivered += 1  # the hot path: nothing to say (the debugger has it)
            else:
                self._log_outcome(outcome, status, delay, lost=lost)
        metrics.WEBHOOK_DELIVERED.inc(delivered)
        for trip in tripped:
            self._log.warning("webhooks.endpoint_disabled", endpoint_id=trip.endpoint.id,
                              consecutive_failures=trip.endpoint.consecutive_failures)

    def _log_outcome(self, outcome: Outcome, status: DeliveryStatus, delay: float, lost: bool) -> None:
        job = outcome.job
        bound = self._log.bind(endpoint_id=job.endpoint_id, event_id=job.event_id, delivery_id=job.delivery_id,
                               attempt=job.attempts + 1, response_status=outcome.response_status)
        if lost:
            metrics.WEBHOOK_LEASE_LOST.inc()
            bound.warning("webhooks.lease_lost")
        elif status is DeliveryStatus.DEAD:
            metrics.WEBHOOK_DEAD.inc()
            bound.warning("webhooks.dead", error=outcome.error)
        else:
            metrics.WEBHOOK_FAILED.inc()
            bound.info("webhooks.attempt_failed", error=outcome.error, retry_in_s=delay)


def _next_state(outcome: Outcome) -> tuple[DeliveryStatus, float]:
    if outcome.ok:
        return DeliveryStatus.DELIVERED, 0.0
    delay = schedule.retry_delay(outcome.job.attempts + 1, outcome.job.max_attempts)
    return (DeliveryStatus.DEAD, 0.0) if delay is None else (DeliveryStatus.FAILED, float(delay))


def _tallies(outcomes: list[Outcome]) -> list[store.FailureTally]:
    """Per endpoint, in completion order: was there a success, and how many failures after it."""
    reset: dict[str, bool] = {}
    failures: dict[str, int] = {}
    for outcome in outcomes:
        endpoint = outcome.job.endpoint_id
        if outcome.ok:
            reset[endpoint], failures[endpoint] = True, 0
        else:
            reset.setdefault(endpoint, False)
            failures[endpoint] = failures.get(endpoint, 0) + 1
    return [store.FailureTally(e, reset[e], failures[e]) for e in reset]
