"""The admission state in memory: per-tenant limits, cycle usage and holds.

A decision is a dict lookup and the pure policy (microseconds), never a query on
the hot path: usage is loaded from the database once per tenant and cycle, then
moved by calls being recorded; limits by our own writes, status by the
``tenant_status_changed`` signal (LimitServices.status_changed). Holds are persisted behind the decision (batched), so a
restarted daemon still knows what calls in progress reserved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from cdr_ingest.classify import CallClass, Direction, classify
from cdr_ingest.dialing import destination
from cdr_ingest.pricing import partner_rate, retail_rate
from cdr_ingest.rates import Rate
from cdr_ingest.records import CallRecord, TenantBilling
from controlplane.limits import store
from cdr_ingest.cycles import cycle_start, next_cycle_start
from controlplane.limits.policy import (CAUSE_FORBIDDEN, CAUSE_INVALID_NUMBER, Decision, Hold, Ledger, Limits,
                                       Reason, Usage, admit_inbound, decide, rated_caps)
from provisioning.access import call_access
from provisioning.model import TenantStatus

log = structlog.get_logger(__name__)
BillingLoader = Callable[[store.Conn, str], Awaitable[TenantBilling | None]]
RING_SLACK = timedelta(seconds=120)  # a hold outlives its cut-off by the ring time and some slack


@dataclass(slots=True)
class TenantState:
    tenant_id: str
    partner_id: str
    status: str
    timezone: str
    limits: Limits
    has_limits: bool
    usage: Usage
    cycle_start: datetime
    cycle_end: datetime
    ledger: Ledger = field(default_factory=Ledger)
    # call id -> (admitted at, channel, expires at)
    calls: dict[str, tuple[datetime, str, datetime]] = field(default_factory=dict)
    billing: TenantBilling | None = None
    billing_until: float = 0.0

    @property
    def calls_allowed(self) -> bool:
        """Its phones may place calls: the tenant-status rule (provisioning.access)."""
        return call_access(TenantStatus(self.status)).outbound


class Engine:
    def __init__(self, pool: asyncpg.Pool, billing: BillingLoader, *, max_call_s: int = 14400,
                 billing_ttl: float = 30.0) -> None:
        self.pool = pool
        self.load_billing = billing
        self.max_call_s = max_call_s
        self.billing_ttl = billing_ttl
        self.tenants: dict[str, TenantState] = {}
        self._pending: list[tuple[str, str, Hold, str, datetime, datetime]] = []
        self._released: list[str] = []
        self._flush = asyncio.Event()
        self._loading: dict[str, asyncio.Future[TenantState | None]] = {}

    # ------------------------------------------------------------ loading

    async def load_all(self) -> None:
        """At start: every tenant, its cycle usage, and the holds that survived a restart."""
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn:
            rows = await store.all_tenants(conn)
            for row in rows:
                self.tenants[row["id"]] = await self._state(conn, row, now)
            for res in await store.live_reservations(conn, now):
                state = self.tenants.get(res["tenant_id"])
                if state is not None:
                    state.ledger.holds[res["call_id"]] = store.hold_from(res)
                    state.calls[res["call_id"]] = (res["admitted_at"], res["channel"], res["expires_at"])
        log.info("limits.loaded", tenants=len(self.tenants))

    async def _state(self, conn: store.Conn, row: asyncpg.Record, now: datetime) -> TenantState:
        limits = store.limits_from(row if row.get("has_limits") else None)
        start = cycle_start(now, row["timezone"], limits.billing_anchor_day)
        seconds, micros = await store.cycle_usage(conn, row["id"], start)
        return TenantState(row["id"], row["partner_id"], row["status"], row["timezone"], limits,
                           bool(row.get("has_limits")), Usage(seconds, micros), start,
                           next_cycle_start(now, row["timezone"], limits.billing_anchor_day))

    async def tenant(self, tenant_id: str, *, fresh: bool = False) -> TenantState | None:
        """The tenant's state; loaded (once, however many calls ask at once) when unknown."""
        state = self.tenants.get(tenant_id)
        if state is not None and not fresh:
            return state
        waiting = self._loading.get(tenant_id)
        if waiting is not None:
            return await waiting
        future: asyncio.Future[TenantState | None] = asyncio.get_running_loop().create_future()
        self._loading[tenant_id] = future
        try:
            async with self.pool.acquire() as conn:
                row = await store.one_tenant(conn, tenant_id)
                loaded = await self._state(conn, row, datetime.now(UTC)) if row else None
            if loaded is not None and state is not None:  # keep what is in flight
                loaded.ledger, loaded.calls = state.ledger, state.calls
            if loaded is None:
                self.tenants.pop(tenant_id, None)
            else:
                self.tenants[tenant_id] = loaded
            future.set_result(loaded)
            return loaded
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            del self._loading[tenant_id]

    async def rates(self, state: TenantState, number: str, now: datetime) -> tuple[Rate | None, Rate | None]:
        """(tenant's retail rate, partner's wholesale rate) of an E.164 ``number``, as rating
        will price its record (cdr_ingest.pricing)."""
        if state.billing is None or state.billing_until < time.monotonic():
            async with self.pool.acquire() as conn:
                state.billing = await self.load_billing(conn, state.tenant_id)
            state.billing_until = time.monotonic() + self.billing_ttl
        billing = state.billing
        if billing is None:
            return None, None
        cls, digits = classify(number), number[1:]
        retail = None
        if billing.profile is not None:
            retail, _ = retail_rate(billing.profile, cls, Direction.OUTBOUND, digits, now)
        wholesale = partner_rate(billing.tier, cls, Direction.OUTBOUND, digits, now, deck=billing.wholesale_deck)
        return retail, wholesale

    # ------------------------------------------------------------ decisions

    async def admit(self, tenant_id: str, number: str, call_id: str, channel: str = "",
                    inbound: bool = False) -> Decision:
        now = datetime.now(UTC)
        state = await self.tenant(tenant_id)
        if state is None:
            return Decision(False, Reason.SUSPENDED, CAUSE_FORBIDDEN, detail="unknown tenant")
        if now >= state.cycle_end:
            state = await self.tenant(tenant_id, fresh=True) or state
        elif not state.calls_allowed and not inbound:  # reactivated since? a refusal is worth one query
            state = await self.tenant(tenant_id, fresh=True) or state
        if call_id in state.ledger.holds:  # AGI retried for the same call: same answer
            hold = state.ledger.holds[call_id]
            return Decision(True, Reason.OK, limit_s=hold.seconds or None, hold=hold)
        if inbound:
            decision = admit_inbound(state.limits, state.ledger, call_id)
        else:
            if classify(number) in (CallClass.EMERGENCY, CallClass.INTERNAL):  # never here via the dialplan;
                return Decision(True, Reason.OK)  # never refused
            # The number the trunk receives (the dialplan applies the same rule): the one rated.
            e164 = destination(number)
            if e164 is None:
                return Decision(False, Reason.NOT_A_NUMBER, CAUSE_INVALID_NUMBER, detail="not a dialable number")
            retail = wholesale = None
            if rated_caps(state.limits):
                retail, wholesale = await self.rates(state, e164, now)
            decision = decide(state.limits, state.calls_allowed, state.usage, state.ledger, call_id, retail,
                              self.max_call_s, partner_rated=wholesale is not None)
            decision = replace(decision, number=e164)
        if decision.admit and decision.hold is not None:
            self._hold(state, decision, channel, now)
        return decision

    def _hold(self, state: TenantState, decision: Decision, channel: str, now: datetime) -> None:
        hold = decision.hold
        assert hold is not None
        state.ledger.holds[hold.call_id] = hold
        expires = now + timedelta(seconds=decision.limit_s or self.max_call_s) + RING_SLACK
        state.calls[hold.call_id] = (now, channel, expires)
        if _worth_keeping(hold):
            self._pending.append((hold.call_id, state.tenant_id, hold, channel, now, expires))
            self._flush.set()

    # ------------------------------------------------------------ calls ending

    def recorded(self, record: CallRecord) -> TenantState | None:
        """A call was recorded: its usage counts, its hold is released."""
        state = self.tenants.get(record.tenant_id)
        if state is None:
            return None
        self.release(state, record.linkedid)
        billable = record.direction != "internal" and record.call_class != "emergency"
        if billable and state.cycle_start <= record.started_at < state.cycle_end:
            state.usage.billable_s += record.billable_s
            state.usage.spend_micros += record.retail_micros or 0
        return state

    def release(self, state: TenantState, call_id: str) -> None:
        hold = state.ledger.holds.pop(call_id, None)
        if hold is not None:
            state.calls.pop(call_id, None)
            if _worth_keeping(hold):
                self._released.append(call_id)
                self._flush.set()

    def expire(self, now: datetime) -> int:
        """Holds whose call we never saw end (daemon down, lost event) lapse."""
        expired = 0
        for state in self.tenants.values():
            for call_id, (_, _, until) in list(state.calls.items()):
                if until <= now:
                    self.release(state, call_id)
                    expired += 1
        return expired

    # ------------------------------------------------------------ persistence (behind the decisions)

    async def persist_forever(self, period: float = 0.05) -> None:
        while True:
            await self._flush.wait()
            self._flush.clear()
            await asyncio.sleep(period)  # batch what arrives meanwhile
            await self.persist()

    async def persist(self) -> None:
        pending, self._pending = self._pending, []
        released, self._released = self._released, []
        if not pending and not released:
            return
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if pending:
                    await store.save_reservations(conn, pending)
                if released:
                    await store.delete_reservations(conn, released)
        except Exception:
            self._pending[:0], self._released[:0] = pending, released
            raise

    async def expire_forever(self, period: float = 15.0) -> None:
        while True:
            await asyncio.sleep(period)
            expired = self.expire(datetime.now(UTC))
            if expired:
                log.warning("limits.holds_expired", holds=expired)


def _worth_keeping(hold: Hold) -> bool:
    """Only holds that reserve something are persisted for a restart: a call of a tenant
    without time, money or channel caps holds nothing (two writes per call saved)."""
    return hold.pool is not None or hold.seconds > 0 or hold.micros > 0
