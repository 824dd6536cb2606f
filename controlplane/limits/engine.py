"""The admission state in memory: per-tenant limits, cycle usage and holds, and beside
them per-partner status and wallet (balance and the wallet holds of calls in progress).

A decision is a dict lookup and the pure policy (microseconds), never a query on
the hot path: usage is loaded from the database once per tenant and cycle, then
moved by calls being recorded; limits by our own writes, status by the
``tenant_status_changed`` signal (LimitServices.status_changed). Holds are persisted behind the decision (batched), so a
restarted daemon still knows what calls in progress reserved.

A partner's status and balance are loaded once, then kept by ``partner_status_changed``
and ``wallet_changed`` (the wallet's pg NOTIFY, delivered in commit order). A recorded
call's debit reaches the balance by that notice, which may be read after the recorder's
``call_recorded``: so the call's wallet hold is not simply dropped when it is recorded,
it becomes the recorded debit ("settling") and stays counted until a balance notice
read after it and ``state.SETTLE_GRACE_S`` have passed (the grace covers a notice of an older
commit read after the recorder's answer). A debit is thus counted once or twice,
never zero times: admission can under-admit for a moment, never over-admit. Should no
notice come (LISTEN lost), the expiry job reads the balance itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from cdr_ingest.classify import CallClass, Direction, classify
from cdr_ingest.dialing import destination
from cdr_ingest.pricing import INCLUDED_CLASSES, included_left, partner_rate, retail_rate
from cdr_ingest.rates import Rate
from cdr_ingest.records import CallRecord, TenantBilling
from controlplane.limits import store
from controlplane.limits.state import PartnerState, TenantState
from controlplane.profiles import store as profiles_store
from controlplane.limits.policy import (CAUSE_FORBIDDEN, CAUSE_INVALID_NUMBER, Account, Decision, Hold, Reason,
                                       Usage, admit_inbound, decide, rated_caps, wallet_applies)
from provisioning.model import PartnerStatus

log = structlog.get_logger(__name__)
BillingLoader = Callable[[store.Conn, str], Awaitable[TenantBilling | None]]
RING_SLACK = timedelta(seconds=120)  # a hold outlives its cut-off by the ring time and some slack
SETTLE_UNSEEN_S = 10.0  # no notice after this long: the expiry job reads the balance itself
REFRESH_MIN_S = 1.0  # a refusal on the partner's account re-reads it at most this often
# Refusals the partner's account decides: worth re-reading it (a missed signal must not refuse forever).
_INCLUDED = tuple(sorted(c.value for c in INCLUDED_CLASSES))  # record classes the included minutes cover
_ACCOUNT_REASONS = frozenset({Reason.WALLET_EMPTY, Reason.PARTNER_SUSPENDED, Reason.TRIAL_RESTRICTED})


class Engine:
    def __init__(self, pool: asyncpg.Pool, billing: BillingLoader, *, max_call_s: int = 14400,
                 billing_ttl: float = 30.0) -> None:
        self.pool = pool
        self.load_billing = billing
        self.max_call_s = max_call_s
        self.billing_ttl = billing_ttl
        self.tenants: dict[str, TenantState] = {}
        self.partners: dict[str, PartnerState] = {}
        self._billing_refresh: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: list[tuple[str, str, Hold, str, datetime, datetime]] = []
        self._released: list[str] = []
        self._flush = asyncio.Event()
        self._loading: dict[str, asyncio.Future[TenantState | None]] = {}

    # ------------------------------------------------------------ loading

    async def load_all(self) -> None:
        """At start: every tenant, its cycle usage, and the holds that survived a restart."""
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn:
            asked = time.monotonic()
            for prow in await store.partner_accounts(conn):
                self._partner_read(prow, asked)
            rows = await store.all_tenants(conn)
            for row in rows:
                self.tenants[row["id"]] = await self._state(conn, row, now)
            for res in await store.live_reservations(conn, now):
                state = self.tenants.get(res["tenant_id"])
                if state is not None:
                    hold = store.hold_from(res)
                    state.ledger.holds[res["call_id"]] = hold
                    state.calls[res["call_id"]] = (res["admitted_at"], res["channel"], res["expires_at"])
                    if state.partner is not None:
                        state.partner.hold(hold.call_id, hold.wallet_micros)
        log.info("limits.loaded", tenants=len(self.tenants), partners=len(self.partners))

    def _partner_read(self, row: asyncpg.Record, asked_at: float) -> PartnerState:
        partner = self.partners.get(row["id"])
        if partner is None:
            partner = self.partners[row["id"]] = PartnerState(row["id"], PartnerStatus(row["status"]),
                                                               int(row["balance"]), refreshed_at=asked_at)
        else:
            partner.read(PartnerStatus(row["status"]), int(row["balance"]), asked_at)
        return partner

    async def _partner(self, conn: store.Conn, partner_id: str) -> PartnerState | None:
        """The partner's state; read once, when its first tenant is loaded after start."""
        partner = self.partners.get(partner_id)
        if partner is not None:
            return partner
        asked = time.monotonic()
        row = await store.partner_account(conn, partner_id)
        return None if row is None else self._partner_read(row, asked)

    async def refresh_partner(self, partner: PartnerState) -> None:
        """Read the partner's status and balance again (off the hot path: a refusal, the expiry job)."""
        asked = time.monotonic()
        async with self.pool.acquire() as conn:
            row = await store.partner_account(conn, partner.partner_id)
        if row is not None:
            self._partner_read(row, asked)

    async def _state(self, conn: store.Conn, row: asyncpg.Record, now: datetime) -> TenantState:
        limits = store.limits_from(row if row.get("has_limits") else None)
        # The tenant's billing period (controlplane.profiles: one rule for caps and invoices);
        # its spend counts the calls' retail charges and the period's base and unit fees.
        pricing = await profiles_store.tenant_pricing(conn, row["id"])
        assert pricing is not None  # the row is the tenant's
        period = pricing.period(now)
        seconds, micros, included = await store.cycle_usage(conn, row["id"], period.start, _INCLUDED)
        fees = await profiles_store.fees_of(conn, pricing, now)
        return TenantState(row["id"], row["partner_id"], row["status"], row["timezone"], limits,
                           bool(row.get("has_limits")), Usage(seconds, micros + fees, included), period.start,
                           period.end,
                           partner=await self._partner(conn, row["partner_id"]), fees_micros=fees)

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
        if state.billing is None:
            async with self.pool.acquire() as conn:
                state.billing = await self.load_billing(conn, state.tenant_id)
            state.billing_until = time.monotonic() + self.billing_ttl
        elif state.billing_until < time.monotonic() and state.tenant_id not in self._billing_refresh:
            # Stale: this call prices with what is known, a task reads the new context (no query here).
            self._billing_refresh.add(state.tenant_id)
            task = asyncio.get_running_loop().create_task(self._refresh_billing(state))
            self._tasks.add(task)  # referenced until done: the loop keeps only weak references
            task.add_done_callback(self._tasks.discard)
        billing = state.billing
        if billing is None:
            return None, None
        cls, digits = classify(number), number[1:]
        retail = None
        profile = billing.profile_at(now)
        if profile is not None:
            retail, _ = retail_rate(profile, cls, Direction.OUTBOUND, digits, now)
        wholesale = partner_rate(billing.tier, cls, Direction.OUTBOUND, digits, now, billing.schedule,
                                 deck=billing.wholesale_deck)
        return retail, wholesale

    async def _refresh_billing(self, state: TenantState) -> None:
        try:
            async with self.pool.acquire() as conn:
                billing = await self.load_billing(conn, state.tenant_id)
            if billing is not None:
                state.billing = billing
            state.billing_until = time.monotonic() + self.billing_ttl
        except Exception:
            log.exception("limits.billing_refresh_failed", tenant_id=state.tenant_id)
        finally:
            self._billing_refresh.discard(state.tenant_id)

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
            decision = await self._decide(state, e164, call_id, now)
            if decision.reason in _ACCOUNT_REASONS and state.partner is not None \
                    and time.monotonic() - state.partner.refreshed_at >= REFRESH_MIN_S:
                # Refused on the partner's account: a missed signal must not refuse for ever (one read).
                await self.refresh_partner(state.partner)
                decision = await self._decide(state, e164, call_id, now)
            decision = Decision(decision.admit, decision.reason, decision.cause, decision.limit_s, decision.hold,
                                decision.detail, e164)  # dataclasses.replace: 5 times dearer, on every call
        if decision.admit and decision.hold is not None:
            self._hold(state, decision, channel, now)
        return decision

    async def _decide(self, state: TenantState, e164: str, call_id: str, now: datetime) -> Decision:
        """The pure policy on what is in memory (rates: loaded once per tenant, then refreshed behind).

        The wallet is read after the last await: from there to the hold (``admit``) nothing yields,
        so concurrent calls see each other's holds (read before the rates' first load, N calls
        would each see the whole balance)."""
        call_class = classify(e164)
        partner = state.partner
        retail = wholesale = None
        if rated_caps(state.limits) or (partner is not None and wallet_applies(Account(partner.status), call_class)):
            retail, wholesale = await self.rates(state, e164, now)
        account = partner.account(time.monotonic()) if partner is not None else None
        return decide(state.limits, state.calls_allowed, state.usage, state.ledger, call_id, retail,
                      self.max_call_s, partner_rated=wholesale is not None, account=account,
                      call_class=call_class, wholesale=wholesale,
                      included_left_s=self._included_left(state, call_class, now))

    @staticmethod
    def _included_left(state: TenantState, call_class: CallClass, now: datetime) -> int:
        """The included minutes this call may use: the profile's bundle less what recorded calls
        used and what every call in progress holds (all of them, whatever their class: a
        conservative count, so concurrent calls never share the same free seconds twice)."""
        if state.billing is None or state.limits.monthly_spend_micros is None:
            return 0  # only a spend cap reads it: nothing summed on the other calls' path
        reserved_s, _ = state.ledger.reserved()
        return included_left(state.billing.profile_at(now), call_class, state.usage.included_s + reserved_s)

    def _hold(self, state: TenantState, decision: Decision, channel: str, now: datetime) -> None:
        hold = decision.hold
        assert hold is not None
        state.ledger.holds[hold.call_id] = hold
        if state.partner is not None:
            state.partner.hold(hold.call_id, hold.wallet_micros)
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
        if state.partner is not None:  # the debit is held until the balance shows it (module doc)
            state.partner.settle(record.linkedid, record.wholesale_micros or 0, time.monotonic())
        billable = record.direction != "internal" and record.call_class != "emergency"
        if billable and state.cycle_start <= record.started_at < state.cycle_end:
            state.usage.billable_s += record.billable_s
            state.usage.spend_micros += record.retail_micros or 0
            if record.call_class in _INCLUDED:
                state.usage.included_s += record.billable_s
        return state

    def release(self, state: TenantState, call_id: str) -> None:
        hold = state.ledger.holds.pop(call_id, None)
        if state.partner is not None:
            state.partner.release(call_id)
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
            try:
                await self.settle_unseen()
            except Exception:
                log.exception("limits.settle_failed")

    # ------------------------------------------------------------ partners (signals)

    def wallet_changed(self, partner_id: str, balance_micros: int) -> None:
        """A committed balance (``wallet_changed``); a partner not loaded yet reads it when it is."""
        partner = self.partners.get(partner_id)
        if partner is not None:
            partner.noticed(balance_micros)

    def partner_status(self, partner_id: str, status: PartnerStatus) -> list[TenantState]:
        """The partner's new status (``partner_status_changed``); its tenants loaded here."""
        partner = self.partners.get(partner_id)
        if partner is None:
            return []
        partner.status = status
        return [t for t in self.tenants.values() if t.partner is partner]

    async def settle_unseen(self, now: float | None = None) -> int:
        """Partners with a recorded debit no balance notice followed for ``SETTLE_UNSEEN_S``:
        their balance is read (the notices may be lost). The number of partners read."""
        at = time.monotonic() if now is None else now
        stale = [p for p in self.partners.values()
                 if any(not seen and at - when >= SETTLE_UNSEEN_S for _, when, seen in p.settling.values())]
        for partner in stale:
            await self.refresh_partner(partner)
        if stale:  # a notice read before the recorder's answer, or LISTEN lost
            log.info("limits.wallet_balance_read", partners=len(stale))
        return len(stale)


def _worth_keeping(hold: Hold) -> bool:
    """Only holds that reserve something are persisted for a restart: a call of a tenant
    without time, money or channel caps, of a partner not drawing on its wallet, holds
    nothing (two writes per call saved)."""
    return hold.pool is not None or hold.seconds > 0 or hold.micros > 0 or hold.wallet_micros > 0
