"""The report figures from the rows the store reads. Pure: no I/O; docs/reports.md says each
definition in the words of this module (the test's generator recomputes them independently).

Every window is a run of whole local days, so day-keyed rows are summed here for any window.
Ratios: integer micros divided with half-up rounding; percents as strings with 2 decimals,
half up, null when the denominator is 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from controlplane.reports.models import (CashDay, DailyUsage, Growth, InvoiceGroup, PeriodView, Revenue,
                                         RevenueFigures, TenantRow, TrendMonth, UsageLine)
from controlplane.reports.periods import Period

CENT = Decimal("0.01")


def div_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero; 0 when the denominator is 0."""
    if denominator == 0:
        return 0
    q = (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(q)


def percent(numerator: int, denominator: int) -> str | None:
    if denominator == 0:
        return None
    return str((Decimal(numerator) * 100 / Decimal(denominator)).quantize(CENT, rounding=ROUND_HALF_UP))


def growth(current: int, prior: int) -> str | None:
    """(current - prior) / |prior| as a percent; null when prior is 0."""
    return percent(current - prior, abs(prior))


def points(current: str | None, prior: str | None) -> str | None:
    if current is None or prior is None:
        return None
    return str((Decimal(current) - Decimal(prior)).quantize(CENT, rounding=ROUND_HALF_UP))


def within(day: date, first: date, last: date) -> bool:
    return first <= day <= last


def cash(days: Iterable[CashDay], first: date, last: date) -> tuple[int, int]:
    """(payments, refunds) recorded on local days first..last."""
    paid = refunded = 0
    for d in days:
        if first <= d.day <= last:
            paid += d.payments_micros
            refunded += d.refunds_micros
    return paid, refunded


def collection(groups: Iterable[InvoiceGroup], first: date, last: date) -> tuple[int, int]:
    """(invoices issued in first..last and due by its end, those of them paid by their due date);
    cancelled invoices are left out."""
    due = on_time = 0
    for g in groups:
        if g.cancelled or g.due_day is None or not within(g.issued_day, first, last) or g.due_day > last:
            continue
        due += g.count
        on_time += g.count if g.paid_on_time else 0
    return due, on_time


def mrr(tenants: Sequence[TenantRow], at: datetime, index: int) -> tuple[int, int]:
    """(MRR, active tenants) just before ``at``: base fees of the profiles assigned then."""
    total = count = 0
    for t in tenants:
        if t.active_at(at):
            total += t.base_fees[index]
            count += 1
    return total, count


def view(period: Period) -> PeriodView:
    return PeriodView(start=period.start, end=period.end, first_day=period.first, last_day=period.last,
                      days=period.days, timezone=period.timezone, preset=period.preset)


OVERAGE_KINDS = ("extensions", "dids_local", "dids_toll_free", "minutes_local", "minutes_toll_free",
                 "minutes_international")
ONE_TIME_KINDS = ("setup", "porting", "custom")


def revenue(period: Period, now: datetime, cash_days: Sequence[CashDay], groups: Sequence[InvoiceGroup],
            tenants: Sequence[TenantRow], outstanding_micros: int, lines: Mapping[str, int], currency: str) -> Revenue:
    """``tenants`` carry base fees at [min(end, now), min(prior end, now)] (as_of_instants); ``lines``:
    the line amounts by kind of the invoices issued in the period (not cancelled)."""
    prior = period.prior()
    end_at, prior_end_at = as_of_instants(period, now)

    def figures(p: Period, at: datetime, index: int) -> tuple[int, int, int, int, int, int, int]:
        paid, refunded = cash(cash_days, p.first, p.last)
        month_fees, active = mrr(tenants, at, index)
        due, on_time = collection(groups, p.first, p.last)
        return paid - refunded, paid, refunded, month_fees, active, due, on_time

    rev, paid, refunded, fees, active, due, on_time = figures(period, end_at, 0)
    p_rev, _, _, p_fees, p_active, p_due, p_on_time = figures(prior, prior_end_at, 1)
    lifetime_paid, lifetime_refunded = cash(cash_days, date.min, period.last)
    issued = [g for g in groups if within(g.issued_day, period.first, period.last) and not g.cancelled]

    def kinds(*names: str) -> int:
        return sum(lines.get(n, 0) for n in names)
    rate, p_rate = percent(on_time, due), percent(p_on_time, p_due)
    arpu, p_arpu = div_half_up(fees, active), div_half_up(p_fees, p_active)
    avg, p_avg = div_half_up(rev, active), div_half_up(p_rev, p_active)
    return Revenue(
        period=view(period), prior_period=view(prior), currency=currency,
        mrr_micros=fees, arr_micros=12 * fees, revenue_micros=rev, payments_micros=paid, refunds_micros=refunded,
        invoiced_subscriptions_micros=kinds("base_fee"), invoiced_overages_micros=kinds(*OVERAGE_KINDS),
        invoiced_one_time_micros=kinds(*ONE_TIME_KINDS), invoiced_credits_micros=kinds("credit"),
        invoiced_tax_micros=sum(g.tax_micros for g in issued),
        invoiced_total_micros=sum(g.total_micros for g in issued),
        active_tenants=active, arpu_micros=arpu, average_revenue_per_tenant_micros=avg,
        lifetime_revenue_micros=lifetime_paid - lifetime_refunded, outstanding_micros=outstanding_micros,
        invoices_due=due, invoices_paid_on_time=on_time, collection_rate_percent=rate,
        prior=RevenueFigures(currency=currency, mrr_micros=p_fees, revenue_micros=p_rev, active_tenants=p_active,
                             arpu_micros=p_arpu, average_revenue_per_tenant_micros=p_avg,
                             collection_rate_percent=p_rate),
        growth=Growth(mrr_percent=growth(fees, p_fees), arr_percent=growth(12 * fees, 12 * p_fees),
                      revenue_percent=growth(rev, p_rev), active_tenants_percent=growth(active, p_active),
                      arpu_percent=growth(arpu, p_arpu), average_revenue_per_tenant_percent=growth(avg, p_avg),
                      collection_rate_points=points(rate, p_rate)))


def as_of_instants(period: Period, now: datetime) -> tuple[datetime, datetime]:
    """Point-in-time figures (MRR, active tenants) are taken at the period's end, or now when the
    period has not ended; the prior period's at its end (the period's start)."""
    return min(period.end, now), min(period.start, now)


def trends(months: Sequence[tuple[date, date]], starts: Sequence[datetime], ends: Sequence[datetime],
           cash_days: Sequence[CashDay], groups: Sequence[InvoiceGroup], paid_days: Sequence[tuple[date, int]],
           tenants: Sequence[TenantRow], currency: str) -> list[TrendMonth]:
    """One row per local month [first, next first); ``starts``/``ends``: its UTC instants."""
    out: list[TrendMonth] = []
    for (first, following), start, end in zip(months, starts, ends, strict=True):
        last = date.fromordinal(following.toordinal() - 1)
        paid, refunded = cash(cash_days, first, last)
        sent = sum(g.count for g in groups if within(g.issued_day, first, last))
        paid_count = sum(n for d, n in paid_days if within(d, first, last))
        new = sum(1 for t in tenants if start <= t.created_at < end)
        churned = sum(1 for t in tenants if t.cancelled_at is not None and start <= t.cancelled_at < end)
        active = sum(1 for t in tenants if t.active_at(start))
        out.append(TrendMonth(month=f"{first.year:04d}-{first.month:02d}", currency=currency,
                              revenue_micros=paid - refunded, invoices_sent=sent, invoices_paid=paid_count,
                              new_tenants=new, churned_tenants=churned, active_at_start=active,
                              churn_rate_percent=percent(churned, active)))
    return out


def minutes(seconds: int) -> int:
    """Billable minutes shown: whole minutes, rounded down (the seconds are given beside them)."""
    return seconds // 60


def usage_lines(units: dict[str, int], unit_revenue: dict[str, int], usage: Sequence[DailyUsage],
                currency: str) -> list[UsageLine]:
    """Units (at the period's end) with their invoiced revenue; minutes by class with the retail
    charge of the calls that started in the period."""
    lines = [UsageLine(name=k, count=units.get(k, 0), billable_s=None, revenue_micros=unit_revenue.get(k, 0),
                       currency=currency) for k in ("extensions", "dids_local", "dids_toll_free")]
    for cls in ("local", "toll_free", "international"):
        seconds = sum(getattr(u, f"{cls}_s") for u in usage)
        retail = sum(getattr(u, f"{cls}_retail_micros") for u in usage)
        lines.append(UsageLine(name=f"minutes_{cls}", count=minutes(seconds), billable_s=seconds,
                               revenue_micros=retail, currency=currency))
    return lines


def billable_s(u: DailyUsage) -> int:
    """Billable seconds that count for churn risk: the billed classes (local, toll-free, international)."""
    return u.local_s + u.toll_free_s + u.international_s


def minutes_dropped(recent_s: int, prior_s: int) -> bool:
    """Seed 003's heuristic: fell by more than 50 % (recent < prior / 2), prior not zero."""
    return prior_s > 0 and 2 * recent_s < prior_s


def credit_note_net(amount_micros: int, invoice_tax_micros: int, invoice_total_micros: int) -> int:
    """A credit note net of the tax share it refunds (its invoice's tax / total, half up)."""
    return amount_micros - div_half_up(amount_micros * invoice_tax_micros, invoice_total_micros)


def show(micros: int, currency: str) -> str:
    """Money for people: to the cent, half up, with thousands separators ("1,234.56 USD")."""
    cents = div_half_up(micros, 10_000)
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100:,}.{abs(cents) % 100:02d} {currency}"
