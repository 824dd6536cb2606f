"""What the reports read (rows the store returns) and what they answer (msgspec records). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import msgspec


# --- inputs (store -> figures) ------------------------------------------------------------

@dataclass(frozen=True)
class CashDay:
    """Payments and refunds recorded against the partner's invoices on one local day."""

    day: date
    payments_micros: int
    refunds_micros: int


@dataclass(frozen=True)
class InvoiceGroup:
    """Issued invoices (not DRAFT or VOID) grouped by local issue day, local due day and outcome."""

    issued_day: date
    due_day: date | None
    cancelled: bool
    paid_on_time: bool  # the payments recorded by its due instant cover its total
    count: int
    subtotal_micros: int
    tax_micros: int
    total_micros: int


@dataclass(frozen=True)
class TenantRow:
    id: str
    name: str
    sip_prefix: str
    status: str
    created_at: datetime
    cancelled_at: datetime | None
    base_fees: tuple[int, ...]  # the assigned profile's base fee just before each instant asked
    profiles: tuple[str | None, ...]  # that profile's name

    def active_at(self, at: datetime) -> bool:
        """Created before ``at`` and not cancelled by then (docs/reports.md "Active tenant")."""
        if self.status == "CANCELLED" and self.cancelled_at is None:
            return False
        return self.created_at < at and (self.cancelled_at is None or self.cancelled_at >= at)


@dataclass(frozen=True)
class TenantMoney:
    """Per tenant: cash collected ever and in the period, outstanding now, last payment."""

    tenant_id: str
    lifetime_micros: int
    period_micros: int
    outstanding_micros: int
    last_payment_at: datetime | None


@dataclass(frozen=True)
class DailyUsage:
    """report_daily summed over a day range, per tenant ('' = no tenant)."""

    tenant_id: str
    calls: int
    local_s: int
    toll_free_s: int
    international_s: int
    other_s: int
    local_retail_micros: int
    toll_free_retail_micros: int
    international_retail_micros: int
    cost_micros: int


# --- answers ------------------------------------------------------------------------------

class PeriodView(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime
    first_day: date
    last_day: date
    days: int
    timezone: str
    preset: str | None


class Growth(msgspec.Struct, frozen=True):
    """Percent change against the prior period (2 decimals, half up); null when the prior is 0."""

    mrr_percent: str | None
    arr_percent: str | None
    revenue_percent: str | None
    active_tenants_percent: str | None
    arpu_percent: str | None
    average_revenue_per_tenant_percent: str | None
    collection_rate_points: str | None  # percentage points: current rate - prior rate


class RevenueFigures(msgspec.Struct, frozen=True):
    """The prior period's figures growth is computed from."""

    currency: str
    mrr_micros: int
    revenue_micros: int
    active_tenants: int
    arpu_micros: int
    average_revenue_per_tenant_micros: int
    collection_rate_percent: str | None


class Revenue(msgspec.Struct, frozen=True):
    period: PeriodView
    prior_period: PeriodView
    currency: str
    mrr_micros: int
    arr_micros: int
    revenue_micros: int
    payments_micros: int
    refunds_micros: int
    invoiced_subscriptions_micros: int
    invoiced_overages_micros: int
    invoiced_one_time_micros: int
    invoiced_credits_micros: int
    invoiced_tax_micros: int
    invoiced_total_micros: int
    active_tenants: int
    arpu_micros: int
    average_revenue_per_tenant_micros: int
    lifetime_revenue_micros: int
    outstanding_micros: int
    invoices_due: int
    invoices_paid_on_time: int
    collection_rate_percent: str | None
    prior: RevenueFigures
    growth: Growth


class UsageLine(msgspec.Struct, frozen=True):
    name: str  # extensions | dids_local | dids_toll_free | minutes_local | minutes_toll_free | minutes_international
    count: int  # units at the period's end, or billable minutes (rounded down) in it
    billable_s: int | None
    revenue_micros: int
    currency: str


class Usage(msgspec.Struct, frozen=True):
    period: PeriodView
    currency: str
    lines: list[UsageLine]
    calls: int
    total_revenue_micros: int


class TrendMonth(msgspec.Struct, frozen=True):
    month: str  # YYYY-MM, local
    currency: str
    revenue_micros: int
    invoices_sent: int
    invoices_paid: int
    new_tenants: int
    churned_tenants: int
    active_at_start: int
    churn_rate_percent: str | None


class Trends(msgspec.Struct, frozen=True):
    timezone: str
    months: list[TrendMonth]


class TenantRevenue(msgspec.Struct, frozen=True):
    tenant_id: str
    name: str
    sip_prefix: str
    status: str
    profile: str | None
    currency: str
    mrr_micros: int
    period_revenue_micros: int
    lifetime_revenue_micros: int
    outstanding_micros: int
    last_payment_at: datetime | None


class TenantsByRevenue(msgspec.Struct, frozen=True):
    period: PeriodView
    sort: str
    order: str
    tenants: list[TenantRevenue]


class TenantMargin(msgspec.Struct, frozen=True):
    tenant_id: str
    name: str
    currency: str
    invoiced_net_micros: int  # invoice subtotals (net of tax) issued in the period
    credit_notes_net_micros: int  # credit notes issued in the period, net of their tax share
    revenue_micros: int
    cost_micros: int
    margin_micros: int
    margin_percent: str | None


class Margin(msgspec.Struct, frozen=True):
    period: PeriodView
    currency: str
    revenue_micros: int
    cost_micros: int
    margin_micros: int
    margin_percent: str | None
    tenants: list[TenantMargin]


class RiskReason(msgspec.Struct, frozen=True):
    code: str  # minutes_drop | overdue_invoices
    detail: str


class TenantRisk(msgspec.Struct, frozen=True):
    tenant_id: str
    name: str
    currency: str
    recent_billable_s: int
    prior_billable_s: int
    drop_percent: str | None
    overdue_invoices: int
    overdue_micros: int
    reasons: list[RiskReason]


class ChurnRisk(msgspec.Struct, frozen=True):
    as_of_day: date
    recent_days: list[date]  # [first, last] of the last 30 days
    prior_days: list[date]  # [first, last] of the 30 before
    tenants: list[TenantRisk]


class PartnerRow(msgspec.Struct, frozen=True):
    partner_id: str
    name: str
    tier: str
    status: str
    trial_ends_at: datetime | None
    timezone: str
    currency: str
    wallet_balance_micros: int
    wholesale_revenue_micros: int  # the partner's wallet debits for its tenants' usage and units
    tenant_revenue_micros: int  # cash the partner collected from its tenants
    mrr_micros: int
    active_tenants: int


class TierRow(msgspec.Struct, frozen=True):
    tier: str
    partners: int
    currency: str
    wholesale_revenue_micros: int
    tenant_revenue_micros: int
    mrr_micros: int
    wallet_balance_micros: int


class TrialRow(msgspec.Struct, frozen=True):
    partner_id: str
    name: str
    tier: str
    trial_ends_at: datetime | None


class PlatformOverview(msgspec.Struct, frozen=True):
    preset: str | None
    first_day: date
    last_day: date
    currency: str
    wholesale_revenue_micros: int
    tenant_revenue_micros: int
    mrr_micros: int
    wallet_balance_micros: int
    active_tenants: int
    tiers: list[TierRow]
    partners: list[PartnerRow]
    trials: list[TrialRow]


class ReportSettings(msgspec.Struct, frozen=True):
    timezone: str
    monthly_reports: bool  # the brand's notification toggle (PUT /v1/account/notifications)


class SettingsBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    timezone: str
