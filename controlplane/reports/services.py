"""Decides the reports: which rows to read for a period (store), the figures (figures.py, pure),
the partner's zone, the platform's view across partners."""

from __future__ import annotations

import asyncio

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg
import structlog

from controlplane.brand import store as brand_store
from controlplane.db.connection import Connection
from controlplane.reports import figures, store
from controlplane.reports.models import (ChurnRisk, Margin, PartnerRow, PlatformOverview, ReportSettings, Revenue,
                                         RiskReason, SettingsBody, TenantMargin, TenantRevenue, TenantRisk,
                                         TenantsByRevenue, TierRow, TrendMonth, Trends, TrialRow, Usage)
from controlplane.reports.periods import Period, churn_windows, last_months, local_day, midnight, parse_month, \
    resolve, zone, zone_problem
from controlplane.shared.problems import FieldError, Problem

log = structlog.get_logger(__name__)
SORTS = ("revenue", "lifetime", "mrr", "outstanding", "last_payment", "name")
TIERS = ("STARTER", "PROFESSIONAL", "BUSINESS", "ENTERPRISE")


def _not_found(partner_id: str) -> Problem:
    return Problem(404, f"no partner {partner_id}", code="not_found")


def sort_tenants(rows: list[TenantRevenue], sort: str, order: str) -> list[TenantRevenue]:
    """Sorted by ``sort`` then tenant id (a stable order for equal figures); nulls last."""
    def key(r: TenantRevenue) -> tuple[object, ...]:
        value: object = {"revenue": r.period_revenue_micros, "lifetime": r.lifetime_revenue_micros,
                         "mrr": r.mrr_micros, "outstanding": r.outstanding_micros,
                         "last_payment": r.last_payment_at, "name": r.name.lower()}[sort]
        return (value is None, value if value is not None else 0)

    present = sorted((r for r in rows if key(r)[0] is False), key=lambda r: (key(r)[1], r.tenant_id),
                     reverse=order == "desc")
    return present + sorted((r for r in rows if key(r)[0] is True), key=lambda r: r.tenant_id)


@dataclass(frozen=True)
class ReportServices:
    pool: asyncpg.Pool
    currency: str

    async def _zone(self, conn: Connection, partner_id: str) -> str:
        info = await store.partner(conn, partner_id)
        if info is None:
            raise _not_found(partner_id)
        return info.timezone

    async def settings(self, partner_id: str) -> ReportSettings:
        async with self.pool.acquire() as conn:
            tz = await self._zone(conn, partner_id)
            contact = await brand_store.partner_contact(conn, partner_id)
        return ReportSettings(timezone=tz, monthly_reports=bool(contact and contact.notifications.monthly_reports))

    async def put_settings(self, partner_id: str, body: SettingsBody) -> ReportSettings:
        problem = zone_problem(body.timezone)
        if problem is not None:
            raise Problem(422, f"timezone: {problem}", field="timezone")
        async with self.pool.acquire() as conn, conn.transaction():
            await self._zone(conn, partner_id)
            changed = await store.set_timezone(conn, partner_id, body.timezone)
        log.info("reports.timezone_set", partner_id=partner_id, timezone=body.timezone, changed=changed)
        return await self.settings(partner_id)

    async def revenue(self, partner_id: str, query: Mapping[str, str], now: datetime) -> Revenue:
        async with self.pool.acquire() as conn:
            tz = await self._zone(conn, partner_id)
            period = resolve(dict(query), tz, now)
        return await self._revenue(partner_id, period, now)

    async def _revenue(self, partner_id: str, period: Period, now: datetime) -> Revenue:
        # Independent reads, each on its own pooled connection at once (the pool as Executor).
        tz, db = period.timezone, self.pool
        cash, groups, tenants, owed, lines = await asyncio.gather(
            store.cash_days(db, partner_id, tz), store.invoice_groups(db, partner_id, tz, period.prior().start, period.end),
            store.tenants(db, partner_id, figures.as_of_instants(period, now)), store.outstanding(db, partner_id),
            store.line_totals(db, partner_id, period.start, period.end))
        return figures.revenue(period, now, cash, groups, tenants, owed, lines, self.currency)

    async def usage(self, partner_id: str, query: Mapping[str, str], now: datetime) -> Usage:
        async with self.pool.acquire() as conn:
            tz = await self._zone(conn, partner_id)
            period = resolve(dict(query), tz, now)
        at, _ = figures.as_of_instants(period, now)
        db = self.pool
        units, unit_revenue, usage = await asyncio.gather(
            store.units(db, partner_id, at), store.line_totals(db, partner_id, period.start, period.end),
            store.daily_usage(db, partner_id, period.first, period.last))
        lines = figures.usage_lines(units, unit_revenue, usage, self.currency)
        return Usage(period=figures.view(period), currency=self.currency, lines=lines,
                     calls=sum(u.calls for u in usage), total_revenue_micros=sum(x.revenue_micros for x in lines))

    async def trends(self, partner_id: str, until: str | None, now: datetime) -> Trends:
        async with self.pool.acquire() as conn:
            tz = await self._zone(conn, partner_id)
            months = last_months(parse_month(until, tz, now))
        return Trends(timezone=tz, months=await self._trends(partner_id, tz, months))

    async def _trends(self, partner_id: str, tz: str, months: list[tuple[date, date]]) -> list[TrendMonth]:
        zi, db = zone(tz), self.pool
        starts = [midnight(first, zi) for first, _ in months]
        ends = [midnight(following, zi) for _, following in months]
        cash, groups, paid, tenants = await asyncio.gather(
            store.cash_days(db, partner_id, tz), store.invoice_groups(db, partner_id, tz, starts[0], ends[-1]),
            store.paid_days(db, partner_id, tz), store.tenants(db, partner_id, []))
        return figures.trends(months, starts, ends, cash, groups, paid, tenants, self.currency)

    async def tenants(self, partner_id: str, query: Mapping[str, str], now: datetime) -> TenantsByRevenue:
        sort, order = query.get("sort", "revenue"), query.get("order")
        errors = []
        if sort not in SORTS:
            errors.append(FieldError("sort", f"sort: one of {', '.join(SORTS)}"))
        if order is not None and order not in ("asc", "desc"):
            errors.append(FieldError("order", "order: asc or desc"))
        rest = {k: v for k, v in query.items() if k not in ("sort", "order")}
        async with self.pool.acquire() as conn:
            tz = await self._zone(conn, partner_id)
            try:
                period = resolve(rest, tz, now)
            except Problem as problem:
                raise Problem(422, "; ".join(e.message for e in errors + problem.errors),
                              errors=errors + problem.errors) from None
            if errors:
                raise Problem(422, "; ".join(e.message for e in errors), errors=errors)
            rows = await self._tenant_rows(conn, partner_id, period, now)
        order = order or ("asc" if sort == "name" else "desc")
        return TenantsByRevenue(period=figures.view(period), sort=sort, order=order,
                                tenants=sort_tenants(rows, sort, order))

    async def _tenant_rows(self, conn: Connection, partner_id: str,
                           period: Period, now: datetime) -> list[TenantRevenue]:
        at, _ = figures.as_of_instants(period, now)
        tenants = await store.tenants(conn, partner_id, [at])
        money = await store.tenant_money(conn, partner_id, period.start, period.end)
        out = []
        for t in tenants:
            if not t.active_at(at):
                continue
            m = money.get(t.id)
            out.append(TenantRevenue(
                tenant_id=t.id, name=t.name, sip_prefix=t.sip_prefix, status=t.status, profile=t.profiles[0],
                currency=self.currency, mrr_micros=t.base_fees[0],
                period_revenue_micros=m.period_micros if m else 0, lifetime_revenue_micros=m.lifetime_micros if m else 0,
                outstanding_micros=m.outstanding_micros if m else 0, last_payment_at=m.last_payment_at if m else None))
        return out

    async def margin(self, partner_id: str, query: Mapping[str, str], now: datetime) -> Margin:
        async with self.pool.acquire() as conn:
            tz = await self._zone(conn, partner_id)
            period = resolve(dict(query), tz, now)
        db = self.pool
        all_tenants, net, notes, usage = await asyncio.gather(
            store.tenants(db, partner_id, []), store.invoiced_net(db, partner_id, period.start, period.end),
            store.credit_notes(db, partner_id, period.start, period.end),
            store.daily_usage(db, partner_id, period.first, period.last))
        tenants = {t.id: t for t in all_tenants}
        credited: dict[str, int] = {}
        for tenant_id, amount, tax, total in notes:
            credited[tenant_id] = credited.get(tenant_id, 0) + figures.credit_note_net(amount, tax, total)
        cost = {u.tenant_id: u.cost_micros for u in usage if u.tenant_id}
        rows = []
        for tenant_id in sorted(set(net) | set(credited) | {k for k, v in cost.items() if v}):
            revenue = net.get(tenant_id, 0) - credited.get(tenant_id, 0)
            spent = cost.get(tenant_id, 0)
            tenant = tenants.get(tenant_id)
            rows.append(TenantMargin(tenant_id=tenant_id, name=tenant.name if tenant else "", currency=self.currency,
                                     invoiced_net_micros=net.get(tenant_id, 0),
                                     credit_notes_net_micros=credited.get(tenant_id, 0), revenue_micros=revenue,
                                     cost_micros=spent, margin_micros=revenue - spent,
                                     margin_percent=figures.percent(revenue - spent, revenue)))
        rows.sort(key=lambda r: (-r.margin_micros, r.tenant_id))
        revenue = sum(r.revenue_micros for r in rows)
        spent = sum(r.cost_micros for r in rows)
        return Margin(period=figures.view(period), currency=self.currency, revenue_micros=revenue, cost_micros=spent,
                      margin_micros=revenue - spent, margin_percent=figures.percent(revenue - spent, revenue),
                      tenants=rows)

    async def churn_risk(self, partner_id: str, now: datetime) -> ChurnRisk:
        async with self.pool.acquire() as conn:
            tz = await self._zone(conn, partner_id)
            today = local_day(now, zone(tz))
            recent, prior = churn_windows(today)
        db = self.pool
        tenants, windows, late = await asyncio.gather(
            store.tenants(db, partner_id, []), store.billable_windows(db, partner_id, recent, prior),
            store.overdue(db, partner_id))
        out = []
        for t in tenants:
            if t.status == "CANCELLED":
                continue
            recent_s, prior_s = windows.get(t.id, (0, 0))
            count, owed = late.get(t.id, (0, 0))
            reasons = []
            if figures.minutes_dropped(recent_s, prior_s):
                reasons.append(RiskReason("minutes_drop", f"billable minutes fell {figures.percent(prior_s - recent_s, prior_s)}%"
                                          f" ({figures.minutes(recent_s)} in the last 30 days,"
                                          f" {figures.minutes(prior_s)} in the 30 before)"))
            if count:
                reasons.append(RiskReason("overdue_invoices", f"{count} overdue invoice(s), "
                                          f"{figures.show(owed, self.currency)} unpaid"))
            if reasons:
                out.append(TenantRisk(tenant_id=t.id, name=t.name, currency=self.currency, recent_billable_s=recent_s,
                                      prior_billable_s=prior_s,
                                      drop_percent=figures.percent(prior_s - recent_s, prior_s),
                                      overdue_invoices=count, overdue_micros=owed, reasons=reasons))
        out.sort(key=lambda r: (-len(r.reasons), -r.overdue_micros, r.tenant_id))
        return ChurnRisk(as_of_day=today, recent_days=list(recent), prior_days=list(prior), tenants=out)

    async def platform(self, query: Mapping[str, str], now: datetime) -> PlatformOverview:
        async with self.pool.acquire() as conn:
            partners = await store.partners(conn)
            periods = {p.id: resolve(dict(query), p.timezone, now) for p in partners}
            costs = await store.platform_costs(conn, [(p, x.first, x.last) for p, x in periods.items()])
            cash = await store.platform_cash(conn, [(p, x.start, x.end) for p, x in periods.items()])
            mrr = await store.platform_mrr(conn, now)
        rows = [PartnerRow(partner_id=p.id, name=p.name, tier=p.tier, status=p.status, trial_ends_at=p.trial_ends_at,
                           timezone=p.timezone, currency=self.currency, wallet_balance_micros=p.wallet_balance_micros,
                           wholesale_revenue_micros=costs.get(p.id, 0), tenant_revenue_micros=cash.get(p.id, 0),
                           mrr_micros=mrr.get(p.id, (0, 0))[0], active_tenants=mrr.get(p.id, (0, 0))[1])
                for p in partners]
        tiers = [TierRow(tier=tier, partners=len(of), currency=self.currency,
                         wholesale_revenue_micros=sum(r.wholesale_revenue_micros for r in of),
                         tenant_revenue_micros=sum(r.tenant_revenue_micros for r in of),
                         mrr_micros=sum(r.mrr_micros for r in of),
                         wallet_balance_micros=sum(r.wallet_balance_micros for r in of))
                 for tier in TIERS for of in [[r for r in rows if r.tier == tier]]]
        trials = sorted((TrialRow(partner_id=r.partner_id, name=r.name, tier=r.tier, trial_ends_at=r.trial_ends_at)
                         for r in rows if r.status == "TRIAL"),
                        key=lambda t: (t.trial_ends_at is None, t.trial_ends_at or now, t.partner_id))
        utc = resolve(dict(query), "UTC", now)
        return PlatformOverview(
            preset=utc.preset, first_day=utc.first, last_day=utc.last, currency=self.currency,
            wholesale_revenue_micros=sum(r.wholesale_revenue_micros for r in rows),
            tenant_revenue_micros=sum(r.tenant_revenue_micros for r in rows),
            mrr_micros=sum(r.mrr_micros for r in rows), wallet_balance_micros=sum(r.wallet_balance_micros for r in rows),
            active_tenants=sum(r.active_tenants for r in rows), tiers=tiers, partners=rows, trials=trials)
