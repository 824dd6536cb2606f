"""Limits RPC and the reactions to usage: alerts, auto-suspension, cutting calls short.

Every write to the limits goes through here so the in-memory engine sees it at
once; every recorded call comes through ``after_record`` (the ``call_recorded`` signal)
and re-evaluates that tenant's caps; every status change through ``status_changed``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import msgspec
import structlog

from cdr_ingest.records import CallRecord
from controlplane.events import emit
from controlplane.shared.problems import Problem
from controlplane.limits import store
from controlplane.limits.caps import CapTripped
from controlplane.limits.engine import Engine
from controlplane.limits.state import TenantState
from controlplane.limits.models import Figure, LimitDefaults, LimitsBody, TenantLimits, UsageView
from controlplane.profiles import store as profiles_store
from controlplane.limits.policy import Alert, Crossing, Limits, Pool, alert_event, alerts, shortened
from controlplane.signals import CapTrip, PartnerStatusChanged, TenantStatusChanged, TenantUnitsChanged, WalletChanged
from provisioning.model import PartnerStatus

log = structlog.get_logger(__name__)
# (partner id, tenant id, cause) -> the ``suspension_due`` signal: the tenants capability suspends.
Suspend = Callable[[str, str, str], Awaitable[None]]
# (channel, seconds left; 0 = now) -> shortens or ends one call in Asterisk.
CutCall = Callable[[str, int], Awaitable[None]]


def to_limits(body: LimitsBody) -> Limits:
    return Limits(monthly_spend_micros=body.monthly_spend_micros, max_extensions=body.max_extensions,
                  max_dids=body.max_dids, monthly_minutes=body.monthly_minutes,
                  max_inbound=body.max_inbound_calls, max_outbound=body.max_outbound_calls,
                  max_two_way=body.max_two_way_calls, alert_threshold_pct=body.alert_threshold_pct,
                  auto_suspend=body.auto_suspend, billing_anchor_day=body.billing_anchor_day)


def to_body(tenant_id: str, limits: Limits, updated_at: datetime | None) -> TenantLimits:
    return TenantLimits(tenant_id=tenant_id, monthly_spend_micros=limits.monthly_spend_micros,
                        max_extensions=limits.max_extensions, max_dids=limits.max_dids,
                        monthly_minutes=limits.monthly_minutes, max_inbound_calls=limits.max_inbound,
                        max_outbound_calls=limits.max_outbound, max_two_way_calls=limits.max_two_way,
                        alert_threshold_pct=limits.alert_threshold_pct, auto_suspend=limits.auto_suspend,
                        billing_anchor_day=limits.billing_anchor_day, updated_at=updated_at)


def _figure(used: int, limit: int | None) -> Figure:
    return Figure(used=used, limit=limit, pct=None if not limit else used * 100 // limit)


@dataclass
class LimitServices:
    pool: asyncpg.Pool
    engine: Engine
    suspend: Suspend | None = None
    cut: CutCall | None = None
    # (tenant, cycle start, cap, kind) already in limit_alerts: not asked again on every call.
    alerted: set[tuple[str, datetime, str, str]] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _tenant(self, conn: store.Conn, partner_id: str, tenant_id: str) -> asyncpg.Record:
        row = await store.tenant_of_partner(conn, partner_id, tenant_id)
        if row is None:
            raise Problem(404, f"no tenant {tenant_id} for this partner", code="not_found")
        return row

    async def get(self, partner_id: str, tenant_id: str) -> TenantLimits:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            row = await store.get_limits(conn, tenant_id)
        return to_body(tenant_id, store.limits_from(row), row["updated_at"] if row else None)

    async def put(self, partner_id: str, tenant_id: str, body: LimitsBody) -> TenantLimits:
        """Changes are immediate; a tenant already over a new cap is not suspended retroactively."""
        return await self._write(partner_id, tenant_id, to_limits(body))

    async def reset(self, partner_id: str, tenant_id: str) -> TenantLimits:
        async with self.pool.acquire() as conn:
            defaults = store.limits_from(await store.get_defaults(conn, partner_id))
        return await self._write(partner_id, tenant_id, defaults)

    async def _write(self, partner_id: str, tenant_id: str, limits: Limits) -> TenantLimits:
        from controlplane import audit

        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            before = await store.get_limits(conn, tenant_id)
            row = await store.put_limits(conn, tenant_id, limits)
            result = to_body(tenant_id, limits, row["updated_at"])
            await audit.record(conn, action="update", resource="tenant_limits", resource_id=tenant_id,
                               partner_id=partner_id, tenant_id=tenant_id,
                               before=to_body(tenant_id, store.limits_from(before), None) if before else None,
                               after=result)
        state = await self.engine.tenant(tenant_id, fresh=True)
        if state is not None:
            await self.enforce(state)  # a lowered cap shortens calls in progress
        return result

    async def get_defaults(self, partner_id: str) -> LimitDefaults:
        async with self.pool.acquire() as conn:
            limits = store.limits_from(await store.get_defaults(conn, partner_id))
        tenant_view = to_body("", limits, None)  # defaults belong to no tenant: only the limits go out
        return LimitDefaults(**{name: getattr(tenant_view, name) for name in LimitsBody.__struct_fields__})

    async def put_defaults(self, partner_id: str, body: LimitsBody) -> LimitDefaults:
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("SELECT 1 FROM partners WHERE id = $1", partner_id) is None:
                raise Problem(404, f"no partner {partner_id}", code="not_found")
            await store.put_defaults(conn, partner_id, to_limits(body))
        return LimitDefaults(**msgspec.structs.asdict(body))

    async def usage(self, partner_id: str, tenant_id: str) -> UsageView:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            extensions, dids = await store.counts(conn, tenant_id)
        state = await self.engine.tenant(tenant_id)
        assert state is not None
        limits, ledger = state.limits, state.ledger
        reserved_s, reserved_m = ledger.reserved()
        return UsageView(
            tenant_id=tenant_id, cycle_start=state.cycle_start, cycle_end=state.cycle_end,
            minutes=_figure(state.usage.billable_s // 60, limits.monthly_minutes),
            spend_micros=_figure(state.usage.spend_micros, limits.monthly_spend_micros),
            reserved_seconds=reserved_s, reserved_micros=reserved_m,
            extensions=_figure(extensions, limits.max_extensions), dids=_figure(dids, limits.max_dids),
            concurrent_inbound=_figure(ledger.in_pool(Pool.INBOUND), limits.max_inbound),
            concurrent_outbound=_figure(ledger.in_pool(Pool.OUTBOUND), limits.max_outbound),
            concurrent_two_way=_figure(ledger.in_pool(Pool.TWO_WAY), limits.max_two_way))

    # ------------------------------------------------------------ reactions

    def after_record(self, record: CallRecord) -> None:
        """The calls recorder's hook (sync, on its writer task): account, then react off the hot path."""
        state = self.engine.recorded(record)
        if state is not None and state.has_limits and record.billable_s:
            asyncio.get_running_loop().create_task(self._react(state))

    async def _react(self, state: TenantState) -> None:
        try:
            await self.evaluate(state)
            await self.enforce(state)
        except Exception:
            log.exception("limits.react_failed", tenant_id=state.tenant_id)

    async def evaluate(self, state: TenantState) -> None:
        """Alerts once per cap per cycle; at a cap, suspend (auto-suspend on) or only say so."""
        figures = {"monthly_minutes": state.usage.billable_s, "monthly_spend": state.usage.spend_micros}
        suspend_cause: str | None = None
        # In memory first: a call below every threshold (or past ones already announced)
        # costs no query; only a crossing not yet marked opens a transaction.
        crossed = [a for a in alerts(state.limits, figures)
                   if (state.tenant_id, state.cycle_start, a.cap, a.kind.value) not in self.alerted]
        if not crossed:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            for alert in crossed:
                marked = await store.mark_alert(conn, state.tenant_id, state.cycle_start, alert.cap,
                                                alert.kind.value)
                if not marked:
                    self.alerted.add((state.tenant_id, state.cycle_start, alert.cap, alert.kind.value))
                    continue
                kind, data = alert_event(state.tenant_id, alert, state.limits, state.cycle_start)
                await emit(conn, kind, partner_id=state.partner_id, tenant_id=state.tenant_id, data=data)
                if alert.kind is Crossing.CAP and state.limits.auto_suspend and state.calls_allowed:
                    suspend_cause = suspend_cause or alert.cap
        self.alerted.update((state.tenant_id, state.cycle_start, a.cap, a.kind.value) for a in crossed)
        if suspend_cause and self.suspend is not None:
            await self.suspend(state.partner_id, state.tenant_id, f"usage_cap:{suspend_cause}")
            state.status = "SUSPENDED"
            log.warning("limits.tenant_suspended", tenant_id=state.tenant_id, cause=suspend_cause)

    async def enforce(self, state: TenantState) -> None:
        """Shorten or end calls in progress that the allowance no longer covers."""
        if self.cut is None or not state.calls:
            return
        now = datetime.now(UTC)
        order = sorted(state.calls.items(), key=lambda kv: kv[1][0])
        holds = [(state.ledger.holds[cid], int((now - at).total_seconds())) for cid, (at, _, _) in order
                 if cid in state.ledger.holds]
        for call_id, left in shortened(state.limits, state.calls_allowed, state.usage, holds).items():
            channel = state.calls[call_id][1]
            if channel:
                log.info("limits.cut", tenant_id=state.tenant_id, call_id=call_id, seconds_left=left)
                await self.cut(channel, left)

    async def cap_tripped(self, trip: CapTrip) -> None:
        """The ``cap_tripped`` handler (after the refusing transaction rolled back)."""
        await self.count_cap_tripped(trip.partner_id, trip)

    async def count_cap_tripped(self, partner_id: str, tripped: CapTripped | CapTrip) -> None:
        """One extension or DID too many was refused: ``usage.cap_reached`` once per cycle,
        and with auto-suspend the tenant is suspended (seed 003: "when *any* cap is hit")."""
        state = await self.engine.tenant(tripped.tenant_id)
        if state is None or state.partner_id != partner_id:
            return
        alert = Alert(tripped.cap_name, Crossing.CAP, tripped.current, tripped.cap)
        async with self.pool.acquire() as conn, conn.transaction():
            if await store.mark_alert(conn, state.tenant_id, state.cycle_start, alert.cap, alert.kind.value):
                kind, data = alert_event(state.tenant_id, alert, state.limits, state.cycle_start)
                await emit(conn, kind, partner_id=state.partner_id, tenant_id=state.tenant_id, data=data)
        if state.limits.auto_suspend and state.calls_allowed and self.suspend is not None:
            await self.suspend(state.partner_id, state.tenant_id, f"usage_cap:{alert.cap}")
            log.warning("limits.tenant_suspended", tenant_id=state.tenant_id, cause=alert.cap)

    async def status_changed(self, change: TenantStatusChanged) -> None:
        """The ``tenant_status_changed`` handler (after commit): admission follows at once,
        and a tenant no longer allowed to call loses its calls in progress."""
        state = self.engine.tenants.get(change.tenant_id)
        if state is None:  # not loaded yet: its first call loads the committed status
            return
        was_allowed, state.status = state.calls_allowed, change.status
        log.info("limits.status_changed", tenant_id=change.tenant_id, status=change.status, cause=change.cause)
        if was_allowed and not state.calls_allowed:
            await self.enforce(state)

    def units_changed(self, change: TenantUnitsChanged) -> None:
        """``tenant_units_changed`` (sync notice): the fees are re-read off the signal's path."""
        task = asyncio.get_running_loop().create_task(self._units_changed(change.tenant_id))
        self._tasks.add(task)  # referenced until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    async def _units_changed(self, tenant_id: str | None) -> None:
        try:
            for state in await self.recount_fees(tenant_id):
                if state.has_limits:
                    await self.evaluate(state)
                    await self.enforce(state)
        except Exception:
            log.exception("limits.units_changed_failed", tenant_id=tenant_id)

    async def recount_fees(self, tenant_id: str | None) -> list[TenantState]:
        """A tenant's units changed (None: any tenant's may have): its spend counts the fees of the
        units it has now, at once (the calls' usage is left as it is). The states updated."""
        engine = self.engine
        states = list(engine.tenants.values()) if tenant_id is None else \
            [s for s in (engine.tenants.get(tenant_id),) if s is not None]
        if not states:
            return []
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn:
            for state in states:
                pricing = await profiles_store.tenant_pricing(conn, state.tenant_id)
                if pricing is None or not state.cycle_start <= now < state.cycle_end:
                    continue  # gone, or its next period reloads it whole
                fees = await profiles_store.fees_of(conn, pricing, now)
                state.usage.spend_micros += fees - state.fees_micros
                state.fees_micros = fees
        return states

    def wallet_changed(self, change: WalletChanged) -> None:
        """The ``wallet_changed`` handler (a committed balance): admission holds against it at once."""
        self.engine.wallet_changed(change.partner_id, change.balance_micros)

    async def partner_status_changed(self, change: PartnerStatusChanged) -> None:
        """The ``partner_status_changed`` handler (after commit): admission follows at once; when
        the partner's tenants may no longer call (trial ended unactivated), their calls in
        progress end (emergency calls never pass admission: they hold nothing here)."""
        tenants = self.engine.partner_status(change.partner_id, PartnerStatus(change.status))
        log.info("limits.partner_status_changed", partner_id=change.partner_id, status=change.status,
                 tenants=len(tenants))
        for state in tenants:
            if not state.calls_allowed:
                await self.enforce(state)
