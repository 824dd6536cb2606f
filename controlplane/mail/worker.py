"""The mail worker: claim due mails with a lease, send each over SMTP, record the outcome.

At least once: a mail is SENT only after the relay accepted it, and a worker killed at
any point leaves its claims to lapse (``lease``), after which another worker (or the
same one restarted) sends them. A kill between the relay's acceptance and the record
sends the mail twice, with the same Message-ID (from the reference), which receivers and
relays use to drop the repeat. Failures are retried with backoff (schedule.py) and end
DEAD after ``mail.max_attempts``, the last error kept. Without ``mail.host`` nothing is
sent: mails stay queued, and the worker says so once at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
import structlog

from controlplane.config import MailConfig
from controlplane.db.errors import DB_ERRORS
from controlplane.db.listen import listen_forever
from controlplane.mail import store
from controlplane.mail.sender import Outcome, Sender
from controlplane.mail.store import Job
from controlplane.shared.clock import Clock

log = structlog.get_logger(__name__)
LEASE_MARGIN = timedelta(seconds=30)


@dataclass
class MailWorker:
    pool: asyncpg.Pool
    config: MailConfig
    clock: Clock = field(default_factory=Clock)
    poll_interval: float = 1.0
    concurrency: int = 4
    owner: str = field(default_factory=lambda: f"ml_{secrets.token_hex(6)}")

    def __post_init__(self) -> None:
        self._wake = asyncio.Event()
        self._sender = Sender(self.config)
        self._in_flight: set[int] = set()
        self._log = log.bind(worker=self.owner)
        self.sent = 0
        self.errors = 0  # database errors survived (logged)

    @property
    def enabled(self) -> bool:
        return self.config.host is not None

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.config.timeout) + LEASE_MARGIN

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        if not self.enabled:
            waiting = await store.queued(self.pool)
            self._log.warning("mail.disabled", reason="no mail.host configured: emails stay queued",
                              queued=waiting)
            return
        self._log.info("mail.worker_started", relay=f"{self.config.host}:{self.config.port}")
        async with asyncio.TaskGroup() as group:
            group.create_task(self._listen())
            group.create_task(self._loop())

    async def _listen(self) -> None:
        """Hold a LISTEN connection; if it drops, polling covers until it is back."""
        await listen_forever(self.pool, store.NOTIFY_CHANNEL, self._notified, period=self.poll_interval,
                             on_listening=self._wake.set,
                             on_lost=lambda: self._log.warning("mail.listen_lost", exc_info=True))

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            while await self.run_once():
                pass

    async def run_once(self) -> bool:
        """Claim a batch and send it; True when the batch was full (there may be more)."""
        try:
            jobs = await store.claim(self.pool, owner=self.owner, offset=self.clock.offset,
                                     limit=self.concurrency, lease=self.lease, exclude=sorted(self._in_flight))
        except DB_ERRORS:
            self.errors += 1
            self._log.exception("mail.claim_failed")
            return False
        await asyncio.gather(*(self._send(job) for job in jobs))
        return len(jobs) == self.concurrency

    async def _send(self, job: Job) -> None:
        self._in_flight.add(job.id)
        try:
            outcome = await self._sender.attempt(job)
            await self._record(job, outcome)
        finally:
            self._in_flight.discard(job.id)

    async def _record(self, job: Job, outcome: Outcome) -> None:
        bound = self._log.bind(mail_id=job.id, reference=job.reference, attempt=job.attempts + 1)
        try:
            if outcome.ok:
                if await store.record_sent(self.pool, job, owner=self.owner, offset=self.clock.offset):
                    self.sent += 1
                else:
                    bound.warning("mail.lease_lost")
                return
            status = await store.record_failed(self.pool, job, outcome.error or "failed",
                                               permanent=outcome.permanent, owner=self.owner,
                                               offset=self.clock.offset, max_attempts=self.config.max_attempts)
        except DB_ERRORS:
            # The lease lapses and the mail is sent again: at least once, never lost.
            self.errors += 1
            bound.exception("mail.record_failed")
            return
        if status == "DEAD":
            bound.error("mail.dead", error=outcome.error, permanent=outcome.permanent)
        else:
            bound.info("mail.attempt_failed", error=outcome.error)
