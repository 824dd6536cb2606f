"""The partner's account: its view, activation, plan changes and the operator's prices.

The rules are the pure ``plans``/``cycle``/``prices`` modules; this layer reads and writes
through ``store``, charges cards through ``dues`` (payments.charges) and draws the wallet
through ``controlplane.wallet.store``. Status changes emit ``subscription.activated`` /
``subscription.updated`` in their transaction and send ``partner_status_changed`` after commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import msgspec
import structlog

from cdr_ingest.tiers import Tier, TierPrices, TierSchedule
from controlplane.account import dues, invoices, plans, prices, store
from controlplane.account.cycle import cycle_of, next_cycle_start, prorate
from controlplane.account.models import (Account, Activation, Invoice, PlanChange, PlanChangeRequest, Prices,
                                         TierPriceChange, TierPriceList)
from controlplane.account.store import Conn, PartnerRow
from controlplane.events import emit
from controlplane.events.emit import emit_many
from controlplane.payments import store as payments_store
from controlplane.payments.provider import NoPaymentMethod, PaymentProvider
from controlplane.shared import money
from controlplane.shared.pagination import PageRequest, next_page
from controlplane.shared.problems import FieldError, Problem
from controlplane.signals import AfterCommit, PartnerStatusChanged
from controlplane.wallet import store as wallet_store
from controlplane.wallet.models import Entry, EntryKind
from provisioning.model import PartnerStatus

log = structlog.get_logger(__name__)


def now_utc() -> datetime:
    return datetime.now(UTC)


async def partner_schedule(conn: Conn, partner: PartnerRow) -> TierSchedule:
    return await store.schedule_for(conn, partner.id, partner.tier)


def status_event(partner: PartnerRow, status: PartnerStatus, reason: str) -> dict[str, object]:
    return {"partner_id": partner.id, "previous_status": partner.status.value, "status": status.value,
            "tier": partner.tier.value, "reason": reason}


@dataclass
class AccountServices:
    pool: asyncpg.Pool
    payments: PaymentProvider | None
    status_changed: AfterCommit[PartnerStatusChanged] | None
    initial_wallet_credit_micros: int

    async def _partner(self, conn: Conn, partner_id: str, *, lock: bool = False) -> PartnerRow:
        found = await store.partner(conn, partner_id, lock=lock)
        if found is None:
            raise Problem(404, f"no partner {partner_id}", code="not_found")
        return found

    async def _announce(self, partner_id: str, previous: PartnerStatus, status: PartnerStatus) -> None:
        if self.status_changed is not None and previous is not status:
            await self.status_changed.send(PartnerStatusChanged(partner_id, previous.value, status.value))

    # ---------------------------------------------------------------- view

    async def account(self, partner_id: str, now: datetime | None = None) -> Account:
        now = now or now_utc()
        async with self.pool.acquire() as conn:
            partner = await self._partner(conn, partner_id)
            built = await partner_schedule(conn, partner)
            count = await store.extension_count(conn, partner_id)
        current = built.prices_at(partner.tier, now)
        upcoming = prices.next_version(built, partner.tier, now)
        days = None
        if partner.status is PartnerStatus.TRIAL and partner.trial_ends_at is not None:
            days = max(0, (partner.trial_ends_at - now).days + (1 if (partner.trial_ends_at - now).seconds else 0))
        return Account(
            partner_id=partner.id, name=partner.name, tier=partner.tier, status=partner.status,
            trial_ends_at=partner.trial_ends_at, trial_days_left=days, activated_at=partner.activated_at,
            pending_tier=partner.pending_tier, pending_tier_effective_at=partner.pending_tier_from,
            extension_count=count,
            prices=Prices.of(current) if current and current.monthly_fee is not None else None,
            scheduled_prices=Prices.of(upcoming) if upcoming else None, cycle=cycle_of(now),
            next_charge_at=next_cycle_start(now) if partner.status is PartnerStatus.ACTIVE else None,
            platform_fee_billing="invoice" if partner.fee_invoiced else "card")

    # ---------------------------------------------------------------- activation

    async def activate(self, partner_id: str, *, now: datetime | None = None, comp_reason: str | None = None,
                       invoiced: bool = True) -> Activation:
        """TRIAL or SUSPENDED -> ACTIVE. The partner's own activation charges its default card the
        platform fee prorated to the rest of the month plus the initial wallet credit; the
        platform's comp activation (``comp_reason``) charges nothing. Either way the setup fees of
        numbers bought in trial are drawn from the wallet now. ``invoiced`` (comp only): the platform
        invoices the monthly fee itself, so the cycle job charges no card for it."""
        now = now or now_utc()
        async with self.pool.acquire() as conn:
            partner = await self._partner(conn, partner_id)
            if not plans.can_activate(partner.status):
                raise Problem(409, f"the account is {partner.status.value} already", code="already_active")
            listed = (await partner_schedule(conn, partner)).prices_at(partner.tier, now)
            fee = listed.monthly_fee if listed else None
            if comp_reason is None:
                if fee is None:
                    raise Problem(409, "no contract prices are set for this Enterprise partner yet: contact the"
                                       " platform", code="no_contract_prices")
                if self.payments is not None and await payments_store.default_method(conn, partner_id) is None:
                    raise NoPaymentMethod(partner_id)
        if comp_reason is not None:
            async with self.pool.acquire() as conn, conn.transaction():
                previous, setup_total = await self._activate_in(conn, partner_id, now, 0, f"platform: {comp_reason}",
                                                                invoiced=invoiced)
            return await self._activated(partner_id, now, previous, setup_total, 0, 0, None)
        assert fee is not None
        platform_fee = prorate(fee, now)
        credit = self.initial_wallet_credit_micros
        cycle = cycle_of(now)
        lines = [dues.line(f"{partner.tier.value.title()} platform fee, {cycle}, prorated from"
                           f" {now.date().isoformat()}", platform_fee)]
        if credit:
            lines.append(dues.line("Initial wallet credit", credit))
        due = await dues.record_due(self.pool, partner_id, f"activation:{partner_id}", "activation", cycle, lines,
                                    f"Account activation ({partner.tier.value.title()})")
        done: list[tuple[PartnerStatus, int]] = []

        async def activated(conn: Conn, invoice: store.InvoiceRow) -> None:
            # In the invoice's transaction: paid and active commit together, or neither.
            done.append(await self._activate_in(conn, partner_id, now, credit, "activation"))

        outcome = await dues.settle(self.pool, self.payments, due, tier=partner.tier, now=now, on_paid=activated)
        if isinstance(outcome, dues.Unpaid):
            raise outcome.error
        previous, setup_total = done[0] if done else (PartnerStatus.ACTIVE, 0)
        return await self._activated(partner_id, now, previous, setup_total, platform_fee, credit,
                                     outcome.invoice.id)

    async def _activate_in(self, conn: Conn, partner_id: str, now: datetime, credit: int, reason: str, *,
                           invoiced: bool = False) -> tuple[PartnerStatus, int]:
        """(previous status, setup fees drawn): ACTIVE, the credit posted, trial numbers' setup fees drawn."""
        partner = await self._partner(conn, partner_id, lock=True)
        entries: list[Entry] = []
        if credit:
            entries.append(Entry(partner_id, EntryKind.TOP_UP, credit, f"activation:{partner_id}",
                                 note="initial wallet credit at activation"))
        setup = await store.trial_setup_fees(conn, partner_id)
        entries += [Entry(partner_id, EntryKind.SETUP_FEE, -s.amount_micros, f"setup:{s.did_id}",
                          tenant_id=s.tenant_id, note="number bought in trial") for s in setup]
        if partner.status is not PartnerStatus.ACTIVE:
            # Out of TRIAL first: the wallet draws nothing from a TRIAL partner.
            await store.set_status(conn, partner_id, PartnerStatus.ACTIVE, activated_at=now, fee_invoiced=invoiced)
            await emit(conn, "subscription.activated", partner_id=partner_id,
                       data=status_event(partner, PartnerStatus.ACTIVE, reason))
        posted = await wallet_store.post_many(conn, entries)
        setup_total = sum(-p.amount_micros for p, e in zip(posted, entries)
                          if e.kind is EntryKind.SETUP_FEE and p.created)
        log.info("account.activated", partner_id=partner_id, previous=partner.status.value, credit=credit,
                 setup=setup_total, reason=reason)
        return partner.status, setup_total

    async def _activated(self, partner_id: str, now: datetime, previous: PartnerStatus, setup_total: int,
                         platform_fee: int, credit: int, invoice_id: str | None) -> Activation:
        await self._announce(partner_id, previous, PartnerStatus.ACTIVE)
        return Activation(account=await self.account(partner_id, now), platform_fee_micros=platform_fee,
                          wallet_credit_micros=credit, charged_micros=platform_fee + credit,
                          setup_fees_micros=setup_total, invoice_id=invoice_id)

    # ---------------------------------------------------------------- plan changes

    async def change_plan(self, partner_id: str, body: PlanChangeRequest, now: datetime | None = None
                          ) -> PlanChange:
        now = now or now_utc()
        async with self.pool.acquire() as conn:
            partner = await self._partner(conn, partner_id)
            built = await partner_schedule(conn, partner)
            change = self._rules(partner, built, body.tier, await store.extension_count(conn, partner_id), now)
        view = PlanChange(current_tier=change.current, tier=change.target, kind=change.kind.value,
                          effective_at=change.effective_at, new_monthly_fee_micros=change.new_monthly_fee_micros,
                          prorated_charge_micros=change.prorated_charge_micros,
                          charge_now_micros=change.charge_now_micros, applied=False)
        if body.preview:
            return view
        if change.charge_now_micros == 0:
            await self._apply(partner_id, change, now)
            return msgspec.structs.replace(view, applied=True)
        cycle = cycle_of(now)
        due = await dues.record_due(
            self.pool, partner_id, f"upgrade:{cycle}:{change.current.value}:{change.target.value}", "upgrade", cycle,
            [dues.line(f"Upgrade {change.current.value.title()} -> {change.target.value.title()}, {cycle},"
                       f" prorated from {now.date().isoformat()}", change.charge_now_micros)],
            f"Plan upgrade to {change.target.value.title()}")

        async def upgraded(conn: Conn, invoice: store.InvoiceRow) -> None:
            await self._apply_in(conn, partner_id, change, now)

        outcome = await dues.settle(self.pool, self.payments, due, tier=change.target, now=now, on_paid=upgraded)
        if isinstance(outcome, dues.Unpaid):
            raise outcome.error
        return msgspec.structs.replace(view, applied=True, invoice_id=outcome.invoice.id)

    def _rules(self, partner: PartnerRow, built: TierSchedule, target: Tier, extensions: int,
               now: datetime) -> plans.PlanChange:
        current_prices = built.prices_at(partner.tier, now)
        target_prices = built.prices_at(target, now)
        if current_prices is None or target_prices is None:
            raise Problem(409, "no prices in force for this plan", code="no_price")
        try:
            return plans.plan_change(status=partner.status, current=partner.tier, pending=partner.pending_tier,
                                     target=target, current_prices=current_prices, target_prices=target_prices,
                                     extensions=extensions, now=now)
        except plans.PlanRefusal as refusal:
            if refusal.code in ("same_plan",):
                raise Problem(422, f"tier: {refusal.message}", field="tier", code=refusal.code) from None
            raise Problem(409, refusal.message, code=refusal.code, extra=dict(refusal.extra)) from None

    async def _apply(self, partner_id: str, change: plans.PlanChange, now: datetime) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._apply_in(conn, partner_id, change, now)

    async def _apply_in(self, conn: Conn, partner_id: str, change: plans.PlanChange, now: datetime) -> None:
        partner = await self._partner(conn, partner_id, lock=True)
        if change.kind is plans.ChangeKind.CANCEL_DOWNGRADE:
            await store.set_tier(conn, partner_id, partner.tier)
        elif change.kind is plans.ChangeKind.DOWNGRADE and change.effective_at > now:
            await store.set_tier(conn, partner_id, partner.tier, change.target, change.effective_at)
        else:
            await store.set_tier(conn, partner_id, change.target)
        await emit(conn, "subscription.updated", partner_id=partner_id, data={
            "partner_id": partner_id, "status": partner.status.value, "previous_tier": change.current.value,
            "tier": change.current.value if change.effective_at > now else change.target.value,
            "pending_tier": change.target.value if change.effective_at > now else None,
            "change": change.kind.value, "effective_at": change.effective_at.isoformat(),
            "charge_now_micros": change.charge_now_micros, "currency": money.currency()})
        log.info("account.plan_changed", partner_id=partner_id, change=change.kind.value,
                 current=change.current.value, target=change.target.value)

    # ---------------------------------------------------------------- subscription invoices

    async def invoices(self, partner_id: str, page: PageRequest) -> tuple[list[Invoice], str | None]:
        async with self.pool.acquire() as conn:
            rows, cursor = next_page(await store.invoices_page(conn, partner_id, page), page)
        return [invoices.view(r) for r in rows], cursor

    async def _invoice_row(self, partner_id: str, invoice_id: str) -> tuple[store.InvoiceRow, str]:
        async with self.pool.acquire() as conn:
            row = await store.invoice(conn, partner_id, invoice_id)
            partner = await store.partner(conn, partner_id)
        if row is None or partner is None:
            raise Problem(404, "no such invoice", code="not_found")
        return row, partner.name

    async def invoice(self, partner_id: str, invoice_id: str) -> Invoice:
        return invoices.view((await self._invoice_row(partner_id, invoice_id))[0])

    async def invoice_pdf(self, partner_id: str, invoice_id: str) -> tuple[str, bytes]:
        row, name = await self._invoice_row(partner_id, invoice_id)
        return row.number, invoices.render_pdf(row, name)

    # ---------------------------------------------------------------- the operator's prices

    async def tier_prices(self, now: datetime | None = None) -> list[TierPriceList]:
        async with self.pool.acquire() as conn:
            built = prices.schedule(await store.tier_prices(conn))
        del now
        result = []
        for tier in plans.SELF_SERVICE:
            versions = []
            at = datetime(1970, 1, 1, tzinfo=UTC)
            current = built.prices_at(tier, at)
            while current is not None:
                versions.append(Prices.of(current))
                nxt = built.next_change(tier, current.effective_from)
                current = built.prices_at(tier, nxt) if nxt else None
            result.append(TierPriceList(tier=tier, versions=versions))
        return result

    async def schedule_tier_prices(self, p: TierPrices, now: datetime | None = None) -> TierPriceChange:
        """Post a tier's new price list from a future date and tell every partner on that tier."""
        now = now or now_utc()
        errors = prices.price_change_errors(p, now)
        if errors:
            raise Problem(422, "; ".join(f"{f}: {m}" for f, m in errors),
                          errors=[FieldError(f, m) for f, m in errors])
        async with self.pool.acquire() as conn, conn.transaction():
            await store.put_tier_prices(conn, p)
            partners = await store.partners_on_tier(conn, p.tier)
            view = Prices.of(p)
            data = {"tier": p.tier.value, "effective_from": p.effective_from.isoformat(),
                    "prices": {k: getattr(view, k) for k in view.__struct_fields__ if k != "effective_from"}}
            await emit_many(conn, [("subscription.price_change_scheduled", pid, None, data) for pid in partners])
        log.info("account.tier_prices_scheduled", tier=p.tier.value, effective_from=p.effective_from.isoformat(),
                 partners=len(partners))
        return TierPriceChange(tier=p.tier, prices=view, partners_notified=len(partners), scheduled_at=now)

    async def set_enterprise_prices(self, partner_id: str, p: TierPrices) -> Prices:
        errors = prices.fee_errors(p)
        if errors:
            raise Problem(422, "; ".join(f"{f}: {m}" for f, m in errors),
                          errors=[FieldError(f, m) for f, m in errors])
        async with self.pool.acquire() as conn, conn.transaction():
            partner = await self._partner(conn, partner_id, lock=True)
            await store.put_enterprise_prices(conn, partner_id, p)
            if partner.tier is Tier.ENTERPRISE:
                await emit(conn, "subscription.updated", partner_id=partner_id, data={
                    "partner_id": partner_id, "status": partner.status.value, "tier": partner.tier.value,
                    "change": "enterprise_prices", "effective_at": p.effective_from.isoformat()})
        return Prices.of(p)
