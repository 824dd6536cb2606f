"""The lane: first attempts made from memory, in order per (endpoint, order key). Pure.

The dispatcher hands the lane each batch's deliveries whose group has nothing stored still
waiting for a first attempt; the pump takes their heads into free slots (one first attempt
in flight per group, the endpoint's bound kept), and their rows are written once, with the
outcome. A group's next delivery may start when its head's attempt ended, before that is
recorded: the order rule is about first attempts.

The cursor is the position at or below which every delivery of every event was recorded
(or stored for the row path): what a dead worker's lane held is re-created from the events
after it.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Iterable, Mapping

from controlplane.webhooks.models import Group, Job


class Lane:
    def __init__(self, per_endpoint: int) -> None:
        self.per_endpoint = per_endpoint
        # Not started yet, in position order, each with the monotonic time its database clock was read.
        self._queues: dict[Group, deque[tuple[Job, float]]] = {}
        self._idle: dict[Group, None] = {}            # groups with a queue and no attempt in flight
        self._busy: Counter[str] = Counter()          # attempts in flight per endpoint
        self._outstanding: list[int] = []             # positions not recorded yet (a heap)
        self._recorded: set[int] = set()              # recorded, still in the heap
        self._top = 0                                 # the highest position dispatched
        self.queued = 0

    def add(self, jobs: Iterable[Job], top: int, read_at: float) -> None:
        """A dispatched batch's lane deliveries (in position order), its highest position, and
        when (monotonic) the jobs' ``claimed_at`` was read from the database clock."""
        for job in jobs:
            group = (job.endpoint_id, job.order_key)
            queue = self._queues.get(group)
            if queue is None:
                queue = self._queues[group] = deque()
                self._idle[group] = None
            queue.append((job, read_at))
            heapq.heappush(self._outstanding, job.position)
            self.queued += 1
        self._top = max(self._top, top)

    def take(self, room: int, elsewhere: Mapping[str, int]) -> list[tuple[Job, float]]:
        """Up to ``room`` heads to attempt now; ``elsewhere``: the endpoints' other attempts in flight."""
        started: list[Group] = []
        for group in self._idle:  # oldest idle first: a group that just ended goes last
            if len(started) >= room:
                break
            endpoint = group[0]
            if self._busy[endpoint] + elsewhere.get(endpoint, 0) < self.per_endpoint:
                started.append(group)
                self._busy[endpoint] += 1
        taken: list[tuple[Job, float]] = []
        for group in started:
            del self._idle[group]
            queue = self._queues[group]
            taken.append(queue.popleft())
            if not queue:
                del self._queues[group]
        self.queued -= len(taken)
        return taken

    def busy(self) -> Mapping[str, int]:
        """Attempts in flight per endpoint."""
        return self._busy

    def ended(self, job: Job) -> None:
        """``job``'s attempt ended: its group's next delivery may start."""
        self._busy[job.endpoint_id] -= 1
        if not self._busy[job.endpoint_id]:
            del self._busy[job.endpoint_id]
        group = (job.endpoint_id, job.order_key)
        if group in self._queues:
            self._idle[group] = None

    def recorded(self, positions: Iterable[int]) -> None:
        """These deliveries' rows are written (attempted, or stored for the row path)."""
        self._recorded.update(positions)
        heap = self._outstanding
        while heap and heap[0] in self._recorded:
            self._recorded.discard(heapq.heappop(heap))

    def cursor(self) -> int:
        """Every delivery at or below this position is recorded."""
        return self._outstanding[0] - 1 if self._outstanding else self._top

    def endpoints(self) -> dict[str, tuple[str, bytes]]:
        """Endpoints with deliveries waiting in the lane, with the URL and sealed secret they were
        dispatched with (of the newest, when a change came between batches)."""
        return {job.endpoint_id: (job.url, bytes(job.secret_enc))
                for queue in self._queues.values() for job, _ in (queue[-1],)}

    def spill(self, endpoints: set[str]) -> list[Job]:
        """Take out what waits for ``endpoints`` (disabled, deleted or changed): it goes to rows."""
        out: list[Job] = []
        for group in [g for g in self._queues if g[0] in endpoints]:
            out.extend(job for job, _ in self._queues.pop(group))
            self._idle.pop(group, None)
        self.queued -= len(out)
        return out

    def drop(self) -> None:
        """Forget what waits (this worker stopped dispatching: the next dispatcher recovers it from
        the cursor, which therefore stays below it). Attempts in flight end and are recorded."""
        self._queues.clear()
        self._idle.clear()
        self.queued = 0

    def reset(self, top: int) -> None:
        """Start again after a recovery stored everything up to ``top``."""
        self.drop()
        self._outstanding.clear()
        self._recorded.clear()
        self._top = top
