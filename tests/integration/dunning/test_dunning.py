"""Dunning on a real PostgreSQL with a controllable clock: Overdue at day 7, SUSPENDED at day 14 with
the cause stored, the job run twice making each transition once, payment reactivating only a tenant
dunning suspended, two unpaid invoices, the partner's terms (manual), card retries on their days,
and the settings routes over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from api_support import PLUGINS, Api, api_for
from controlplane.dunning.jobs import invoice_paid, run_dunning
from controlplane.dunning.plugin import PLUGIN as DUNNING
from controlplane.invoices import store as invoices
from controlplane.invoices.models import InvoiceLine, InvoiceStatus
from controlplane.profiles import store as profiles
from controlplane.profiles.models import PricingModel, ProfileBody
from controlplane.shared.ids import new_id
from controlplane.signals import InvoicePaid, Signals, TenantStatusChanged
from controlplane.tenants.applier import Applier
from controlplane.tenants.models import PartnerCreate, PartnerTier, TenantCreate, TenantStatus, TenantUpdate
from controlplane.tenants.services import TenantServices

ISSUED = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NET_DAYS = 15
DUE = ISSUED + timedelta(days=NET_DAYS)


def day(n: float) -> datetime:
    """``n`` days after the due date."""
    return DUE + timedelta(days=n)


@dataclass
class World:
    pool: asyncpg.Pool
    signals: Signals
    tenants: TenantServices
    changes: list[TenantStatusChanged] = field(default_factory=list)
    attempts: list[tuple[str, int]] = field(default_factory=list)

    async def tenant(self, name: str) -> tuple[str, str]:
        partner = (await self.tenants.create_partner(PartnerCreate(name=name, tier=PartnerTier.BUSINESS))).id
        tenant = await self.tenants.create_tenant(partner, TenantCreate(
            name=name, billing_email="billing@example.com", sip_prefix=name, status=TenantStatus.ACTIVE))
        return partner, tenant.id

    async def invoice(self, partner: str, tenant: str, *, issued: datetime = ISSUED, total: int = 99_000_000) -> str:
        """An issued (SENT) invoice through the invoices capability's store: due ``NET_DAYS`` later."""
        start = issued - timedelta(days=31)
        new = invoices.NewInvoice(
            id=invoices.new_id(), partner_id=partner, tenant_id=tenant, period_start=start, period_end=issued,
            currency="USD", subtotal_micros=total, tax_micros=0, total_micros=total,
            lines=(InvoiceLine("base_fee", "Base fee", "1", total, total),), tax_name=None, tax_code=None,
            tax_rate=None, net_terms_days=NET_DAYS, off_cycle=True)
        async with self.pool.acquire() as conn, conn.transaction():
            (invoice_id,) = await invoices.insert_drafts(conn, [new])
            (issued_invoice,) = await invoices.issue(conn, [invoice_id], issued)
        assert issued_invoice.due_at is not None
        return invoice_id

    async def pay(self, invoice_id: str) -> None:
        """What collection does on a payment in full: the payment, then ``invoice_paid`` after commit."""
        async with self.pool.acquire() as conn, conn.transaction():
            invoice = await invoices.get(conn, invoice_id)
            assert invoice is not None
            paid = await invoices.apply_payment(conn, invoice_id, invoice.total_micros - invoice.paid_micros,
                                                f"test:{invoice_id}")
        assert paid.status is InvoiceStatus.PAID
        await self.signals.invoice_paid.send(InvoicePaid(paid.partner_id, paid.tenant_id, invoice_id))

    async def status(self, tenant: str) -> tuple[str, str | None]:
        row = await self.pool.fetchrow("SELECT status, suspension_cause FROM tenants WHERE id = $1", tenant)
        assert row is not None
        return row["status"], row["suspension_cause"]

    async def invoice_status(self, invoice_id: str) -> str:
        return str(await self.pool.fetchval("SELECT status FROM tenant_invoices WHERE id = $1", invoice_id))

    async def events(self, tenant: str, kind: str) -> list[dict[str, object]]:
        rows = await self.pool.fetch("SELECT body FROM events WHERE tenant_id = $1 AND type = $2 ORDER BY seq",
                                     tenant, kind)
        return [json.loads(bytes(r["body"]))["data"] for r in rows]

    async def run(self, now: datetime) -> object:
        async def collect(invoice_id: str, attempt: int) -> None:
            self.attempts.append((invoice_id, attempt))
        return await run_dunning(self.pool, self.signals, now, collect)


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool) -> World:
    signals = Signals()
    tenants = TenantServices(pool, Applier(pool), status_changed=signals.tenant_status_changed)
    w = World(pool, signals, tenants)
    signals.suspension_due.connect(tenants.suspension_due)
    signals.reactivation_due.connect(tenants.reactivation_due)

    async def changed(change: TenantStatusChanged) -> None:
        w.changes.append(change)

    async def paid(event: InvoicePaid) -> None:
        await invoice_paid(pool, signals, event)

    signals.tenant_status_changed.connect(changed)
    signals.invoice_paid.connect(paid)
    signals.freeze()
    return w


async def test_overdue_at_seven_suspended_at_fourteen_once_then_paid_reactivates(world: World) -> None:
    partner, tenant = await world.tenant("dun1")
    invoice = await world.invoice(partner, tenant)
    await world.run(day(6.9))
    assert await world.invoice_status(invoice) == "SENT"
    first = await world.run(day(7))
    again = await world.run(day(7))
    assert await world.invoice_status(invoice) == "OVERDUE"
    assert (getattr(first, "overdue"), getattr(again, "overdue")) == (1, 0)
    assert await world.status(tenant) == ("ACTIVE", None)
    await world.run(day(13.9))
    assert await world.status(tenant) == ("ACTIVE", None)

    first = await world.run(day(14))
    again = await world.run(day(14.5))
    assert (getattr(first, "suspended"), getattr(again, "suspended")) == (1, 0)
    assert await world.status(tenant) == ("SUSPENDED", f"dunning:{invoice}")
    (suspended,) = await world.events(tenant, "tenant.suspended")  # one transition, one event
    assert suspended["cause"] == f"dunning:{invoice}"  # tenant.suspended names the invoice
    assert [c.status for c in world.changes if c.tenant_id == tenant] == ["SUSPENDED"]

    await world.pay(invoice)
    assert await world.status(tenant) == ("ACTIVE", None)
    (unsuspended,) = await world.events(tenant, "tenant.unsuspended")
    assert unsuspended["cause"] == f"dunning:{invoice}"
    await world.run(day(20))  # paid: nothing more, no second reactivation
    assert [c.status for c in world.changes if c.tenant_id == tenant] == ["SUSPENDED", "ACTIVE"]
    assert await world.events(tenant, "tenant.unsuspended") == [unsuspended]


async def test_concurrent_runs_make_each_transition_once(world: World) -> None:
    partner, tenant = await world.tenant("dun10")
    invoice = await world.invoice(partner, tenant)
    await asyncio.gather(*(world.run(day(14)) for _ in range(4)))
    assert await world.invoice_status(invoice) == "OVERDUE"
    assert await world.status(tenant) == ("SUSPENDED", f"dunning:{invoice}")
    assert len(await world.events(tenant, "tenant.suspended")) == 1
    assert [c.status for c in world.changes if c.tenant_id == tenant] == ["SUSPENDED"]
    assert await world.pool.fetchval("SELECT count(*) FROM audit_events WHERE resource = 'tenant'"
                                     " AND resource_id = $1 AND action = 'update'", tenant) == 1


async def test_a_manually_suspended_tenant_stays_suspended_when_paid(world: World) -> None:
    partner, tenant = await world.tenant("dun2")
    invoice = await world.invoice(partner, tenant)
    await world.run(day(8))
    await world.tenants.update_tenant(partner, tenant, TenantUpdate(status=TenantStatus.SUSPENDED))
    assert await world.status(tenant) == ("SUSPENDED", "manual")
    await world.run(day(14))  # dunning's suspension: the tenant is suspended already, its cause kept
    assert await world.status(tenant) == ("SUSPENDED", "manual")
    await world.pay(invoice)
    await world.run(day(15))
    assert await world.status(tenant) == ("SUSPENDED", "manual")
    assert await world.events(tenant, "tenant.unsuspended") == []


async def test_suspended_by_dunning_then_by_hand_stays_suspended(world: World) -> None:
    partner, tenant = await world.tenant("dun3")
    invoice = await world.invoice(partner, tenant)
    await world.run(day(14))
    assert await world.status(tenant) == ("SUSPENDED", f"dunning:{invoice}")
    # A usage cap's suspension path: the stored cause changes only on a status transition, so the
    # partner takes it over by reactivating and suspending by hand.
    await world.tenants.update_tenant(partner, tenant, TenantUpdate(status=TenantStatus.ACTIVE))
    assert await world.status(tenant) == ("ACTIVE", None)
    await world.run(day(15))  # reactivated by hand: dunning suspended once for this invoice
    assert await world.status(tenant) == ("ACTIVE", None)
    await world.tenants.suspend_for(partner, tenant, "usage_cap:max_dids")
    await world.pay(invoice)
    assert await world.status(tenant) == ("SUSPENDED", "usage_cap:max_dids")


async def test_two_invoices_past_suspension_both_must_be_paid(world: World) -> None:
    partner, tenant = await world.tenant("dun4")
    older = await world.invoice(partner, tenant, issued=ISSUED - timedelta(days=31))
    newer = await world.invoice(partner, tenant)
    await world.run(day(14))
    assert await world.status(tenant) == ("SUSPENDED", f"dunning:{older}")
    assert await world.invoice_status(newer) == "OVERDUE"
    await world.pay(older)
    assert await world.status(tenant) == ("SUSPENDED", f"dunning:{older}")  # the newer one is past day 14
    await world.pay(newer)
    assert await world.status(tenant) == ("ACTIVE", None)


async def test_a_lost_paid_signal_is_caught_by_the_next_run(world: World) -> None:
    partner, tenant = await world.tenant("dun5")
    invoice = await world.invoice(partner, tenant)
    await world.run(day(14))
    async with world.pool.acquire() as conn, conn.transaction():  # paid, but no invoice_paid sent
        await invoices.apply_payment(conn, invoice, 99_000_000, "wire-1")
    assert await world.status(tenant) == ("SUSPENDED", f"dunning:{invoice}")
    report = await world.run(day(15))
    assert getattr(report, "reactivations") == 1
    assert await world.status(tenant) == ("ACTIVE", None)


async def test_partner_terms_manual_never_suspends(world: World) -> None:
    partner, tenant = await world.tenant("dun6")
    await world.pool.execute("INSERT INTO dunning_settings (partner_id, overdue_after_days, suspend_after_days)"
                             " VALUES ($1, 3, NULL)", partner)
    invoice = await world.invoice(partner, tenant)
    await world.run(day(3))
    assert await world.invoice_status(invoice) == "OVERDUE"
    await world.run(day(60))
    assert await world.status(tenant) == ("ACTIVE", None)


async def test_profile_terms_apply_and_partner_settings_win(world: World) -> None:
    """Without partner settings the tenant's billing profile (as of the invoice's period) decides;
    with them, the partner's days apply to every tenant."""
    partner, tenant = await world.tenant("dun9")
    profile = new_id("bpr")
    async with world.pool.acquire() as conn, conn.transaction():
        await profiles.insert_profile(conn, partner, profile, ProfileBody(
            name="Lenient", model=PricingModel.PAYG, overdue_after_days=2, suspend_after_days=30))
        await profiles.schedule(conn, tenant, ISSUED - timedelta(days=400), profile, ISSUED - timedelta(days=400))
    invoice = await world.invoice(partner, tenant)
    await world.run(day(2))
    assert await world.invoice_status(invoice) == "OVERDUE"  # the profile's 2 days, not 7
    await world.run(day(29))
    assert await world.status(tenant) == ("ACTIVE", None)  # the profile's 30 days, not 14
    await world.pool.execute("INSERT INTO dunning_settings (partner_id, overdue_after_days, suspend_after_days)"
                             " VALUES ($1, 7, 20)", partner)
    await world.run(day(29))
    assert await world.status(tenant) == ("SUSPENDED", f"dunning:{invoice}")  # the partner's 20 days


async def test_card_retries_on_their_days_once_each(world: World) -> None:
    partner, tenant = await world.tenant("dun7")
    invoice = await world.invoice(partner, tenant)
    for n in (0.5, 1, 1.5, 3, 3, 8, 13, 14, 20):
        await world.run(day(n))
    assert [a for i, a in world.attempts if i == invoice] == [2, 3, 4, 5]  # attempt 1: at issue


async def test_a_cancelled_tenant_is_not_suspended(world: World) -> None:
    partner, tenant = await world.tenant("dun8")
    invoice = await world.invoice(partner, tenant)
    await world.tenants.delete_tenant(partner, tenant, None)
    await world.run(day(14))
    assert await world.status(tenant) == ("CANCELLED", None)
    assert await world.invoice_status(invoice) == "OVERDUE"  # the debt stands


# ---------------------------------------------------------------- the settings routes


@pytest.fixture(scope="module")
async def api(pool: asyncpg.Pool) -> AsyncIterator[Api]:
    async with api_for(pool, plugins=[*PLUGINS, DUNNING]) as client:
        yield client


async def test_settings_default_put_manual_and_delete(api: Api) -> None:
    pid = await api.partner()
    r = await api.call("GET", "/v1/account/dunning", partner=pid)
    assert r.status == 200 and r.body == {"policy": "profile", "overdue_after_days": None,
                                          "suspend_after_days": None, "updated_at": None}
    r = await api.call("PUT", "/v1/account/dunning", partner=pid,
                       json={"overdue_after_days": 10, "suspend_after_days": None})
    assert r.status == 200, r.body
    assert (r.body["policy"], r.body["overdue_after_days"], r.body["suspend_after_days"]) == ("partner", 10, None)
    r = await api.call("DELETE", "/v1/account/dunning", partner=pid)
    assert r.status == 200 and r.body["policy"] == "profile"


async def test_bad_settings_name_every_field_and_change_nothing(api: Api) -> None:
    pid = await api.partner()
    await api.call("PUT", "/v1/account/dunning", partner=pid, json={"overdue_after_days": 7, "suspend_after_days": 14})
    for body, fields in [({"overdue_after_days": -1, "suspend_after_days": 400}, ["overdue_after_days",
                                                                                  "suspend_after_days"]),
                         ({"suspend_after_days": "x", "extra": 1}, ["extra", "overdue_after_days",
                                                                    "suspend_after_days"]),
                         ({"overdue_after_days": 10, "suspend_after_days": 5}, ["body"])]:
        r = await api.call("PUT", "/v1/account/dunning", partner=pid, json=body)
        assert r.status == 422, r.body
        assert sorted({e["field"] for e in r.body["errors"]}) == fields, r.body
    r = await api.call("GET", "/v1/account/dunning", partner=pid)
    assert (r.body["overdue_after_days"], r.body["suspend_after_days"]) == (7, 14)
    assert (await api.call("GET", "/v1/account/dunning", partner="ptr_nope")).status in (403, 404)
