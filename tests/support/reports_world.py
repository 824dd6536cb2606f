"""A generated 24-month history for the reports (tests of controlplane/reports): one partner with 200
tenants in America/New_York and a small second partner, with profiles and switches, churn, unit
history, monthly invoices (paid on time, late, partly, never; cancelled, void, drafts), payments,
refunds with credit notes, calls and wallet cost entries.

The generator keeps every event in memory (``History``); the test computes its expected figures
from these events alone, never from SQL. ``load`` writes them as rows (COPY), as the capabilities
that own those tables would have left them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from controlplane.db.connection import Connection

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
ZONE = "America/New_York"
NY = ZoneInfo(ZONE)
START = datetime(2024, 11, 1, 4, 0, tzinfo=UTC)  # 24 months before NOW's month
CLASSES = ("local", "toll_free", "international", "internal")
COST_KINDS = ("usage_local", "usage_toll_free", "usage_international", "monthly_extension")


def local_midnight(day: date, tz: ZoneInfo = NY) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


@dataclass
class Tenant:
    id: str
    partner_id: str
    name: str
    created_at: datetime
    cancelled_at: datetime | None
    assignments: list[tuple[datetime, str]]  # (effective_from, profile id)

    @property
    def status(self) -> str:
        return "CANCELLED" if self.cancelled_at is not None else "ACTIVE"


@dataclass
class Invoice:
    id: str
    partner_id: str
    tenant_id: str
    status: str
    issued_at: datetime | None
    due_at: datetime | None
    lines: list[tuple[str, int]]  # (kind, amount)
    subtotal: int
    tax: int
    total: int
    paid: int = 0
    credited: int = 0
    period_start: datetime = NOW
    number: str | None = None


@dataclass
class Payment:
    invoice_id: str
    kind: str  # payment | refund
    amount: int
    at: datetime
    reference: str


@dataclass
class CreditNote:
    id: str
    partner_id: str
    tenant_id: str
    invoice_id: str
    amount: int
    issued_at: datetime


@dataclass
class Call:
    partner_id: str
    tenant_id: str
    started_at: datetime
    call_class: str
    billable_s: int
    retail: int
    wholesale: int


@dataclass
class Entry:
    partner_id: str
    tenant_id: str | None
    kind: str
    amount: int  # negative: a debit
    at: datetime


@dataclass
class Unit:
    tenant_id: str
    kind: str  # extension | did_local | did_toll_free
    started_at: datetime
    ended_at: datetime | None


@dataclass
class History:
    partner_id: str
    other_partner_id: str
    profiles: dict[str, tuple[str, int]]  # id -> (name, base fee)
    tenants: list[Tenant] = field(default_factory=list)
    invoices: list[Invoice] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    credit_notes: list[CreditNote] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    wallet_balances: dict[str, int] = field(default_factory=dict)


def _months(first: date, last: date) -> list[date]:
    out, d = [], first.replace(day=1)
    while d <= last:
        out.append(d)
        d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return out


def _tax(subtotal: int) -> int:
    return int((subtotal * 85 + 500) // 1000) // 10_000 * 10_000  # 8.5 %, to the cent (down)


def generate(seed: int = 16) -> History:
    rnd = random.Random(seed)
    pid, other = "ptr_rep_main", "ptr_rep_other"
    profiles = {"bpr_rep_flat": ("Flat Rate Starter", 99_000_000), "bpr_rep_payg": ("Pay-As-You-Go", 0),
                "bpr_rep_pro": ("Pro", 249_000_000), "bpr_rep_other": ("Other Flat", 49_000_000)}
    h = History(pid, other, profiles)
    span = (NOW - START).total_seconds()
    for i in range(200):
        created = START + timedelta(seconds=int(rnd.random() * span * 0.9))
        cancelled = None
        if rnd.random() < 0.25:
            cancelled = created + timedelta(seconds=int(rnd.random() * (NOW - created).total_seconds()))
        first = rnd.choice(["bpr_rep_flat", "bpr_rep_flat", "bpr_rep_payg", "bpr_rep_pro"])
        assignments = [(created, first)]
        if rnd.random() < 0.2:  # a profile switch at a later month's start
            at = created + timedelta(days=rnd.randint(20, 400))
            if at < NOW + timedelta(days=20):
                assignments.append((at, rnd.choice(["bpr_rep_flat", "bpr_rep_pro", "bpr_rep_payg"])))
        h.tenants.append(Tenant(f"ten_rep_{i:03d}", pid, f"Tenant {i:03d}", created, cancelled, assignments))
    for i in range(4):
        created = NOW - timedelta(days=100 + 20 * i)
        h.tenants.append(Tenant(f"ten_oth_{i}", other, f"Other {i}", created, None, [(created, "bpr_rep_other")]))
    for t in h.tenants:
        _units(rnd, h, t)
        _bill(rnd, h, t)
        _calls(rnd, h, t)
    h.wallet_balances = {pid: 412_000_000, other: 15_500_000}
    return h


def _alive_until(t: Tenant) -> datetime:
    return t.cancelled_at or NOW


def _units(rnd: random.Random, h: History, t: Tenant) -> None:
    for kind, n in (("extension", rnd.randint(1, 8)), ("did_local", rnd.randint(0, 3)), ("did_toll_free", rnd.randint(0, 1))):
        for _ in range(n):
            start = t.created_at + timedelta(hours=rnd.randint(0, 2000))
            if start >= NOW:
                continue
            end = None if rnd.random() < 0.8 else start + timedelta(hours=rnd.randint(1, 5000))
            if t.cancelled_at is not None and (end is None or end > t.cancelled_at):
                end = max(start, t.cancelled_at)
            if end is not None and end >= NOW:
                end = None
            h.units.append(Unit(t.id, kind, start, end))


def _bill(rnd: random.Random, h: History, t: Tenant) -> None:
    """One invoice per local month the tenant lived in, issued on the next month's 1st (local)."""
    months = _months(t.created_at.astimezone(NY).date(), _alive_until(t).astimezone(NY).date())
    for m in months:
        following = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
        issued = local_midnight(following) + timedelta(hours=1, minutes=rnd.randint(0, 600))
        if issued >= NOW:
            continue
        n = len(h.invoices)
        base = h.profiles[t.assignments[0][1]][1]
        lines = [("base_fee", base), ("extensions", 20_000_000 * rnd.randint(0, 3)),
                 ("dids_local", 4_000_000 * rnd.randint(0, 2)), ("dids_toll_free", 8_000_000 * rnd.randint(0, 1)),
                 ("minutes_local", 25_000 * rnd.randint(0, 400)), ("minutes_international", 100_000 * rnd.randint(0, 30))]
        if rnd.random() < 0.05:
            lines.append(("setup", 50_000_000))
        if rnd.random() < 0.05:
            lines.append(("credit", -10_000_000))
        subtotal = sum(a for _, a in lines)
        if subtotal <= 0:
            continue
        tax = _tax(subtotal)
        roll = rnd.random()
        status = "SENT"
        inv = Invoice(f"inv_rep_{n:05d}", t.partner_id, t.id, status, issued, issued + timedelta(days=15), lines,
                      subtotal, tax, subtotal + tax, period_start=local_midnight(m), number=f"R-{n:06d}")
        if roll < 0.02:
            inv.status, inv.issued_at, inv.due_at, inv.number = "DRAFT", None, None, None
        elif roll < 0.04:
            inv.status, inv.issued_at, inv.due_at, inv.number = "VOID", None, None, None
        elif roll < 0.06:
            inv.status = "CANCELLED"
        else:
            _collect(rnd, h, inv)
        h.invoices.append(inv)
        _costs(rnd, h, t, issued)


def _pay(h: History, inv: Invoice, amount: int, at: datetime) -> None:
    h.payments.append(Payment(inv.id, "payment", amount, at, f"pay:{inv.id}:{len(h.payments)}"))
    inv.paid += amount


def _collect(rnd: random.Random, h: History, inv: Invoice) -> None:
    assert inv.issued_at is not None and inv.due_at is not None
    roll = rnd.random()
    if roll < 0.70:  # paid on time (sometimes exactly at the due instant)
        at = inv.due_at if rnd.random() < 0.05 else inv.issued_at + timedelta(hours=rnd.randint(0, 14 * 24))
        if at < NOW:
            _pay(h, inv, inv.total, at)
    elif roll < 0.80:  # paid late
        at = inv.due_at + timedelta(hours=rnd.randint(1, 20 * 24))
        if at < NOW:
            _pay(h, inv, inv.total, at)
    elif roll < 0.88:  # partly, then the rest late
        part = inv.total // 2 // 10_000 * 10_000
        first = inv.issued_at + timedelta(days=3)
        if first < NOW:
            _pay(h, inv, part, first)
        rest = inv.due_at + timedelta(days=rnd.randint(1, 30))
        if rest < NOW and rnd.random() < 0.5:
            _pay(h, inv, inv.total - part, rest)
    if inv.paid >= inv.total:
        inv.status = "PAID"
        if rnd.random() < 0.08:  # a refund with its credit note
            last = max(p.at for p in h.payments if p.invoice_id == inv.id and p.kind == "payment")
            at = last + timedelta(days=rnd.randint(1, 20))
            if at < NOW:
                amount = min(inv.paid // 10_000 * 10_000, rnd.randint(1, 50) * 1_000_000)
                h.payments.append(Payment(inv.id, "refund", amount, at, f"refund:{inv.id}"))
                inv.credited += amount
                h.credit_notes.append(CreditNote(f"cn_{inv.id}", inv.partner_id, inv.tenant_id, inv.id, amount, at))
    elif inv.paid > 0:
        inv.status = "PARTIALLY_PAID" if inv.due_at + timedelta(days=7) > NOW else "OVERDUE"
    else:
        inv.status = "SENT" if inv.due_at + timedelta(days=7) > NOW else "OVERDUE"


def _costs(rnd: random.Random, h: History, t: Tenant, at: datetime) -> None:
    h.entries.append(Entry(t.partner_id, t.id, "monthly_extension", -rnd.randint(1, 6) * 5_000_000, at))
    if rnd.random() < 0.3:  # a platform-side entry that is no cost (a top-up) and one naming no tenant
        h.entries.append(Entry(t.partner_id, None, "top_up", 100_000_000, at + timedelta(minutes=1)))
        h.entries.append(Entry(t.partner_id, None, "monthly_did_local", -1_000_000, at + timedelta(minutes=2)))


def _calls(rnd: random.Random, h: History, t: Tenant) -> None:
    """A few calls a month over its life, and a denser last 60 days with a drop for some tenants."""
    end = _alive_until(t)
    at = t.created_at
    while at < end:
        _call(rnd, h, t, at)
        at += timedelta(hours=rnd.randint(48, 240))
    recent_start = NOW - timedelta(days=62)
    if t.cancelled_at is None and t.created_at < recent_start:
        dropping = rnd.random() < 0.25
        for d in range(62):
            day = recent_start + timedelta(days=d, hours=rnd.randint(0, 23), minutes=rnd.randint(0, 59))
            if day >= NOW:
                break
            per_day = rnd.randint(0, 2) if dropping and d >= 31 else rnd.randint(0, 4)
            for _ in range(per_day):
                _call(rnd, h, t, day + timedelta(seconds=rnd.randint(0, 3000)))


def _call(rnd: random.Random, h: History, t: Tenant, at: datetime) -> None:
    cls = rnd.choice(CLASSES)
    billable = 0 if rnd.random() < 0.1 else 6 * rnd.randint(1, 100)
    retail = billable * (0 if cls == "internal" else 417)
    wholesale = billable * (0 if cls == "internal" else 150)
    h.calls.append(Call(t.partner_id, t.id, at, cls, billable, retail, wholesale))
    if wholesale:
        kind = {"local": "usage_local", "toll_free": "usage_toll_free", "international": "usage_international"}[cls]
        h.entries.append(Entry(t.partner_id, t.id, kind, -wholesale, at + timedelta(seconds=billable)))


async def load(conn: Connection, h: History) -> None:
    """Write the history as rows (the triggers of migration 0023 keep the rollup as they go)."""
    await conn.execute(
        "INSERT INTO partners (id, name, tier, status, activated_at, created_at, timezone, trial_ends_at) VALUES"
        " ($1, 'Acme Phones', 'BUSINESS', 'ACTIVE', $3, $3, $4, NULL),"
        " ($2, 'New Reseller', 'STARTER', 'TRIAL', NULL, $3, 'UTC', '2026-12-04T00:00Z')",
        h.partner_id, h.other_partner_id, START - timedelta(days=30), ZONE)
    await conn.execute("INSERT INTO partner_wallets (partner_id, balance) VALUES ($1, $2), ($3, $4)",
                       h.partner_id, h.wallet_balances[h.partner_id], h.other_partner_id,
                       h.wallet_balances[h.other_partner_id])
    await conn.execute("INSERT INTO partner_brand (partner_id, brand_name, billing_email, from_email)"
                       " VALUES ($1, 'Acme Phones', 'owner@acme.example', 'reports@acme.example')", h.partner_id)
    await conn.execute("INSERT INTO partner_brand (partner_id, notify_monthly_reports) VALUES ($1, false)",
                       h.other_partner_id)
    owner = {pid: (h.other_partner_id if pid == "bpr_rep_other" else h.partner_id) for pid in h.profiles}
    for profile_id, (name, fee) in h.profiles.items():
        await conn.execute(
            "INSERT INTO billing_profiles (id, partner_id, name, model, base_fee_micros, included_extensions,"
            " included_dids, included_minutes, extension_micros, did_local_micros, did_toll_free_micros,"
            " per_minute_micros, connect_fee_micros, min_seconds, increment_seconds, rounding, charge_inbound,"
            " overdue_after_days, suspend_after_days, net_terms_days)"
            " VALUES ($1, $2, $3, $4, $5, 0, 0, 0, 0, 0, 0, 25000, 0, 6, 6, 'half_up', true, 7, 14, 15)",
            profile_id, owner[profile_id], name, "FLAT" if fee else "PAYG", fee)
    await conn.copy_records_to_table(
        "tenants", columns=["id", "partner_id", "name", "sip_prefix", "billing_email", "status", "created_at",
                            "cancelled_at"],
        records=[(t.id, t.partner_id, t.name, t.id.replace("_", "")[-12:], "billing@tenant.example", t.status,
                  t.created_at, t.cancelled_at) for t in h.tenants])
    await conn.execute("DELETE FROM tenant_profile_assignments WHERE tenant_id = ANY($1::text[])",
                       [t.id for t in h.tenants])
    await conn.copy_records_to_table(
        "tenant_profile_assignments", columns=["tenant_id", "effective_from", "profile_id"],
        records=[(t.id, at, p) for t in h.tenants for at, p in t.assignments])
    await conn.copy_records_to_table(
        "unit_history", columns=["tenant_id", "unit_kind", "unit_id", "started_at", "ended_at"],
        records=[(u.tenant_id, u.kind, f"unit_{i}", u.started_at, u.ended_at) for i, u in enumerate(h.units)])
    await conn.copy_records_to_table(
        "tenant_invoices", columns=["id", "partner_id", "tenant_id", "number", "status", "period_start", "period_end",
                                    "issued_at", "due_at", "currency", "subtotal_micros", "tax_micros", "total_micros",
                                    "paid_micros", "credited_micros", "lines", "created_at"],
        records=[(i.id, i.partner_id, i.tenant_id, i.number, i.status, i.period_start,
                  i.period_start + timedelta(days=28), i.issued_at, i.due_at, "USD", i.subtotal, i.tax, i.total, i.paid,
                  i.credited, json.dumps([{"kind": k, "description": k, "quantity": "1", "unit_micros": a,
                                           "amount_micros": a} for k, a in i.lines]),
                  i.issued_at or i.period_start) for i in h.invoices])
    await conn.copy_records_to_table(
        "tenant_invoice_payments", columns=["invoice_id", "kind", "reference", "amount_micros", "created_at"],
        records=[(p.invoice_id, p.kind, p.reference, p.amount, p.at) for p in h.payments])
    await conn.copy_records_to_table(
        "credit_notes", columns=["id", "partner_id", "tenant_id", "invoice_id", "reference", "status", "seq", "number",
                                 "amount_micros", "currency", "issued_at"],
        records=[(c.id, c.partner_id, c.tenant_id, c.invoice_id, f"ref:{c.id}", "SUCCEEDED", n + 1, f"CN-{n + 1:06d}",
                  c.amount, "USD", c.issued_at) for n, c in enumerate(h.credit_notes)])
    await conn.copy_records_to_table(
        "call_records", columns=["id", "linkedid", "tenant_id", "partner_id", "direction", "caller", "callee",
                                 "started_at", "answered_at", "ended_at", "duration_s", "answered_s", "billable_s",
                                 "wholesale_billable_s", "disposition", "hangup_cause", "call_class",
                                 "wholesale_micros", "retail_micros"],
        records=[(f"cr_rep_{n}", f"rep.{n}", c.tenant_id, c.partner_id, "outbound", "101", "+15015550100",
                  c.started_at, c.started_at, c.started_at + timedelta(seconds=c.billable_s), c.billable_s,
                  c.billable_s, c.billable_s, c.billable_s, "ANSWERED", 16, c.call_class, c.wholesale, c.retail)
                 for n, c in enumerate(h.calls)])
    await conn.copy_records_to_table(
        "wallet_entries", columns=["partner_id", "kind", "amount", "reference", "tenant_id", "created_at"],
        records=[(e.partner_id, e.kind, e.amount, f"rep:{n}", e.tenant_id, e.at) for n, e in enumerate(h.entries)])
