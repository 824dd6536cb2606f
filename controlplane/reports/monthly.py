"""The monthly report mail: on the 1st (partner-local), the past month's headline figures, top
tenants, churn and a 12-month revenue chart (PNG attached), to the partner's billing email through
the email outbox, when the partner's "monthly reports" toggle is on. Exactly once per partner and
month: the outbox reference ``reports:monthly:<partner>:<YYYY-MM>`` is unique (mail.store)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import structlog

from controlplane.brand import store as brand_store
from controlplane.mail import store as mail_store
from controlplane.reports import figures, store
from controlplane.reports.chart import revenue_chart
from controlplane.reports.models import Revenue, TenantRevenue, TrendMonth
from controlplane.reports.periods import Period, add_months, last_months, local_day, zone
from controlplane.reports.services import ReportServices, sort_tenants

log = structlog.get_logger(__name__)
TEMPLATE = "monthly_report"
INTERVAL_S = 900.0
# A daemon down on the 1st still sends the report when it comes back, within this many days.
LATE_DAYS = 7
TOP_TENANTS = 5


def due_month(now: datetime, timezone: str) -> date | None:
    """The month whose report is due now (its first day), or None: due from local midnight of the
    next month's 1st, for LATE_DAYS days."""
    today = local_day(now, zone(timezone))
    if today.day > LATE_DAYS:
        return None
    return add_months(today.replace(day=1), -1)


def reference(partner_id: str, month: date) -> str:
    return f"reports:monthly:{partner_id}:{month:%Y-%m}"


@dataclass(frozen=True)
class MonthlyContent:
    month: date
    revenue: Revenue
    top: list[TenantRevenue]
    trend: list[TrendMonth]

    def values(self, currency: str) -> dict[str, object]:
        r, last = self.revenue, self.trend[-1]

        def money(micros: int) -> str:
            return figures.show(micros, currency)

        return {"report": {
            "month": f"{self.month:%B %Y}", "revenue": money(r.revenue_micros), "mrr": money(r.mrr_micros),
            "arr": money(r.arr_micros), "active_tenants": r.active_tenants, "arpu": money(r.arpu_micros),
            "revenue_growth": r.growth.revenue_percent, "collection_rate": r.collection_rate_percent,
            "outstanding": money(r.outstanding_micros), "lifetime": money(r.lifetime_revenue_micros),
            "new_tenants": last.new_tenants, "churned_tenants": last.churned_tenants,
            "churn_rate": last.churn_rate_percent,
            "top": [{"name": t.name, "revenue": money(t.period_revenue_micros)} for t in self.top]}}


async def content(services: ReportServices, partner_id: str, timezone: str, month: date,
                  now: datetime) -> MonthlyContent:
    following = add_months(month, 1)
    period = Period(month, following - timedelta(days=1), timezone)
    revenue = await services._revenue(partner_id, period, now)
    async with services.pool.acquire() as conn:
        tenants = await services._tenant_rows(conn, partner_id, period, now)
    trend = await services._trends(partner_id, timezone, last_months(month))
    top = sort_tenants(tenants, "revenue", "desc")[:TOP_TENANTS]
    return MonthlyContent(month, revenue, top, trend)


async def send_due(services: ReportServices, now: datetime) -> list[str]:
    """Queue every monthly report due at ``now``; the references queued (none twice, ever)."""
    queued: list[str] = []
    async with services.pool.acquire() as conn:
        partners = await store.partners(conn)
    for partner in partners:
        month = due_month(now, partner.timezone)
        if month is None:
            continue
        ref = reference(partner.id, month)
        async with services.pool.acquire() as conn:
            contact = await brand_store.partner_contact(conn, partner.id)
            if contact is None or not contact.notifications.monthly_reports:
                continue
            if not contact.billing_email:
                log.info("reports.monthly_no_address", partner_id=partner.id)
                continue
            if await store.monthly_report_queued(conn, ref):
                continue
        if await send(services, partner.id, partner.timezone, month, contact.billing_email, now, contact.primary_color):
            queued.append(ref)
    return queued


async def send(services: ReportServices, partner_id: str, timezone: str, month: date, to: str, now: datetime,
               color: str | None = None) -> bool:
    made = await content(services, partner_id, timezone, month, now)
    bars = [(m.month, m.revenue_micros) for m in made.trend]
    png = await asyncio.to_thread(revenue_chart, bars, services.currency, color or "#2563eb")
    attachment = mail_store.Attachment(f"revenue-{month:%Y-%m}.png", "image/png", png)
    async with services.pool.acquire() as conn, conn.transaction():
        done = await mail_store.enqueue(conn, partner_id=partner_id, to=to, template=TEMPLATE,
                                        values=made.values(services.currency), reference=reference(partner_id, month),
                                        attachments=[attachment])
    log.info("reports.monthly_queued", partner_id=partner_id, month=f"{month:%Y-%m}", queued=done)
    return done


async def forever(pool: asyncpg.Pool, currency: str) -> None:
    services = ReportServices(pool, currency)
    while True:
        try:
            await send_due(services, datetime.now(UTC))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the next round retries; the reference keeps it once
            log.exception("reports.monthly_round_failed")
        await asyncio.sleep(INTERVAL_S)
