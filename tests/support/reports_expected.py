"""The report figures of docs/reports.md computed from a generated history's in-memory events
(reports_world), word by word, never from SQL nor with controlplane.reports' own code: the expected
side of tests/integration/reports."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from reports_world import NOW, NY, History, Invoice, local_midnight

UNPAID = ("SENT", "PARTIALLY_PAID", "OVERDUE")


def day(at: datetime) -> date:
    return at.astimezone(NY).date()


def pct(n: int, d: int) -> str | None:
    if d == 0:
        return None
    return str((Decimal(n) * 100 / Decimal(d)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def half_up(n: int, d: int) -> int:
    return 0 if d == 0 else int((Decimal(n) / Decimal(d)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def mine(h: History, items: Iterable[Any]) -> list[Any]:
    return [x for x in items if x.partner_id == h.partner_id]


def cash(h: History, first: date, last: date) -> tuple[int, int]:
    ours = {i.id for i in mine(h, h.invoices)}
    pays = [p for p in h.payments if p.invoice_id in ours and first <= day(p.at) <= last]
    return sum(p.amount for p in pays if p.kind == "payment"), sum(p.amount for p in pays if p.kind == "refund")


def active(t: Any, at: datetime) -> bool:
    return t.created_at < at and (t.cancelled_at is None or t.cancelled_at >= at)


def fee_at(h: History, t: Any, at: datetime) -> int:
    before = [a for a in t.assignments if a[0] < at]
    return h.profiles[max(before)[1]][1] if before else 0


def mrr(h: History, at: datetime) -> tuple[int, int]:
    live = [t for t in mine(h, h.tenants) if active(t, at)]
    return sum(fee_at(h, t, at) for t in live), len(live)


def issued_in(h: History, first: date, last: date, *, cancelled: bool) -> list[Invoice]:
    return [i for i in mine(h, h.invoices) if i.issued_at is not None and first <= day(i.issued_at) <= last
            and (cancelled or i.status != "CANCELLED")]


def collection(h: History, first: date, last: date) -> tuple[int, int]:
    due = [(i, i.due_at) for i in issued_in(h, first, last, cancelled=False)
           if i.due_at is not None and day(i.due_at) <= last]
    on_time = [i for i, at in due if sum(p.amount for p in h.payments if p.invoice_id == i.id and p.kind == "payment"
                                         and p.at <= at) >= i.total]
    return len(due), len(on_time)


def lines(invoices: Iterable[Invoice], *kinds: str) -> int:
    return sum(a for i in invoices for k, a in i.lines if k in kinds)


def growth(cur: int, prior: int) -> str | None:
    return pct(cur - prior, abs(prior))


def expected_revenue(h: History, first: date, last: date) -> dict[str, Any]:
    days = (last - first).days + 1
    p_first, p_last = first - timedelta(days=days), first - timedelta(days=1)
    end_at, p_end_at = min(local_midnight(last + timedelta(days=1)), NOW), min(local_midnight(first), NOW)
    paid, refunded = cash(h, first, last)
    p_paid, p_refunded = cash(h, p_first, p_last)
    fees, n = mrr(h, end_at)
    p_fees, p_n = mrr(h, p_end_at)
    due, on_time = collection(h, first, last)
    p_due, p_on_time = collection(h, p_first, p_last)
    life_paid, life_refunded = cash(h, date(2000, 1, 1), last)
    issued = issued_in(h, first, last, cancelled=False)
    rev, p_rev = paid - refunded, p_paid - p_refunded
    rate, p_rate = pct(on_time, due), pct(p_on_time, p_due)
    return {
        "mrr_micros": fees, "arr_micros": 12 * fees, "revenue_micros": rev, "payments_micros": paid,
        "refunds_micros": refunded, "active_tenants": n, "arpu_micros": half_up(fees, n),
        "average_revenue_per_tenant_micros": half_up(rev, n),
        "lifetime_revenue_micros": life_paid - life_refunded,
        "outstanding_micros": sum(i.total - i.paid for i in mine(h, h.invoices) if i.status in UNPAID),
        "invoices_due": due, "invoices_paid_on_time": on_time, "collection_rate_percent": rate,
        "invoiced_subscriptions_micros": lines(issued, "base_fee"),
        "invoiced_overages_micros": lines(issued, "extensions", "dids_local", "dids_toll_free", "minutes_local",
                                          "minutes_toll_free", "minutes_international"),
        "invoiced_one_time_micros": lines(issued, "setup", "porting", "custom"),
        "invoiced_credits_micros": lines(issued, "credit"),
        "invoiced_tax_micros": sum(i.tax for i in issued), "invoiced_total_micros": sum(i.total for i in issued),
        "growth": {"mrr_percent": growth(fees, p_fees), "arr_percent": growth(12 * fees, 12 * p_fees),
                   "revenue_percent": growth(rev, p_rev), "active_tenants_percent": growth(n, p_n),
                   "arpu_percent": growth(half_up(fees, n), half_up(p_fees, p_n)),
                   "average_revenue_per_tenant_percent": growth(half_up(rev, n), half_up(p_rev, p_n)),
                   "collection_rate_points": None if rate is None or p_rate is None else
                   str((Decimal(rate) - Decimal(p_rate)).quantize(Decimal("0.01")))},
    }


def months_until(last: date, count: int = 12) -> list[tuple[date, date]]:
    out = []
    m = last.replace(day=1)
    for _ in range(count):
        following = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
        out.append((m, following))
        m = date(m.year - (m.month == 1), (m.month - 2) % 12 + 1, 1)
    return out[::-1]


def expected_trends(h: History, last_month: date) -> list[dict[str, Any]]:
    rows = []
    for first, following in months_until(last_month):
        last = following - timedelta(days=1)
        start, end = local_midnight(first), local_midnight(following)
        paid, refunded = cash(h, first, last)
        tenants = mine(h, h.tenants)
        churned = sum(1 for t in tenants if t.cancelled_at is not None and start <= t.cancelled_at < end)
        at_start = sum(1 for t in tenants if active(t, start))
        fully_paid = [i for i in mine(h, h.invoices) if i.status == "PAID"]
        last_pay = {i.id: max(p.at for p in h.payments if p.invoice_id == i.id and p.kind == "payment")
                    for i in fully_paid}
        rows.append({"month": f"{first:%Y-%m}", "currency": "USD", "revenue_micros": paid - refunded,
                     "invoices_sent": len(issued_in(h, first, last, cancelled=True)),
                     "invoices_paid": sum(1 for at in last_pay.values() if first <= day(at) <= last),
                     "new_tenants": sum(1 for t in tenants if start <= t.created_at < end),
                     "churned_tenants": churned, "active_at_start": at_start,
                     "churn_rate_percent": pct(churned, at_start)})
    return rows


COST = ("usage_local", "usage_toll_free", "usage_international", "monthly_extension", "monthly_did_local",
        "monthly_did_toll_free", "setup_fee")


def expected_margin(h: History, first: date, last: date) -> dict[str, dict[str, Any]]:
    start, end = local_midnight(first), local_midnight(last + timedelta(days=1))
    out: dict[str, dict[str, Any]] = {}

    def row(tid: str) -> dict[str, Any]:
        return out.setdefault(tid, {"invoiced_net_micros": 0, "credit_notes_net_micros": 0, "cost_micros": 0})

    for i in issued_in(h, first, last, cancelled=False):
        row(i.tenant_id)["invoiced_net_micros"] += i.subtotal
    by_id = {i.id: i for i in h.invoices}
    for c in mine(h, h.credit_notes):
        if start <= c.issued_at < end:
            inv = by_id[c.invoice_id]
            row(c.tenant_id)["credit_notes_net_micros"] += c.amount - half_up(c.amount * inv.tax, inv.total)
    for e in mine(h, h.entries):
        if e.tenant_id and e.kind in COST and first <= day(e.at) <= last:
            row(e.tenant_id)["cost_micros"] -= e.amount
    for r in out.values():
        r["revenue_micros"] = r["invoiced_net_micros"] - r["credit_notes_net_micros"]
        r["margin_micros"] = r["revenue_micros"] - r["cost_micros"]
        r["margin_percent"] = pct(r["margin_micros"], r["revenue_micros"])
    return {k: v for k, v in out.items() if v["invoiced_net_micros"] or v["credit_notes_net_micros"] or v["cost_micros"]}


def expected_risk(h: History) -> dict[str, dict[str, Any]]:
    today = day(NOW)
    out = {}
    for t in mine(h, h.tenants):
        if t.cancelled_at is not None:
            continue
        billed = [c for c in h.calls if c.tenant_id == t.id and c.call_class != "internal"]
        recent = sum(c.billable_s for c in billed if today - timedelta(days=29) <= day(c.started_at) <= today)
        prior = sum(c.billable_s for c in billed
                    if today - timedelta(days=59) <= day(c.started_at) <= today - timedelta(days=30))
        late = [i for i in h.invoices if i.tenant_id == t.id and i.status == "OVERDUE"]
        reasons = (["minutes_drop"] if prior > 0 and 2 * recent < prior else []) + \
                  (["overdue_invoices"] if late else [])
        if reasons:
            out[t.id] = {"recent_billable_s": recent, "prior_billable_s": prior, "overdue_invoices": len(late),
                         "overdue_micros": sum(i.total - i.paid for i in late), "reasons": reasons}
    return out


