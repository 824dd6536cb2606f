"""The account's jobs: the cycle (monthly fee to the card, unit fees to the wallet) and trial expiry.

Plain async functions of ``now`` (the plugin runs them every ``account.unit_fee_interval_s``;
tests drive them). Each may run twice, concurrently, or die half-way (kill -9) and still charge
once: every wallet entry is idempotent by its reference (``fee:<cycle>:ext:<id>``,
``fee:<cycle>:did:<id>``) and a partner's unit fees are posted in one transaction; the monthly
fee is a due (``sub:<cycle>``) charged through payments with that reference, its invoice
unique by it.

Declined monthly fee (the issue is silent; decided here): ``payment.failed`` is emitted (M mails
it), the service keeps running on the wallet (seed 003 "if your card is declined, your service
keeps running until the wallet hits zero"), and the charge is retried once a day for the rest
of the cycle; a new cycle owes its own fee. The partner is not suspended for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import structlog

from cdr_ingest.tiers import Tier
from controlplane.account.store import Conn
from controlplane.account import dues, plans, store
from controlplane.account.cycle import cycle_of, cycle_start, unit_charges
from controlplane.account.prices import prices_at
from controlplane.account.services import partner_schedule, status_event
from controlplane.events import emit
from controlplane.payments.provider import PaymentProvider
from controlplane.signals import AfterCommit, PartnerStatusChanged
from controlplane.wallet import store as wallet_store
from controlplane.wallet.models import Entry, EntryKind
from provisioning.model import PartnerStatus

log = structlog.get_logger(__name__)
PAGE = 200


@dataclass
class CycleReport:
    partners: int = 0
    unit_entries: int = 0  # wallet entries written by this run (0 on a re-run)
    unit_micros: int = 0
    fees_charged: int = 0
    fees_failed: int = 0
    downgrades: int = 0
    errors: list[str] = field(default_factory=list)


async def run_cycle(pool: asyncpg.Pool, payments: PaymentProvider | None, now: datetime) -> CycleReport:
    """Bill every ACTIVE partner for the cycle ``now`` falls in; one partner's failure stops no other."""
    report = CycleReport()
    after = ""
    while True:
        async with pool.acquire() as conn:
            ids = await store.partners_page(conn, PartnerStatus.ACTIVE, after, PAGE)
        if not ids:
            return report
        for partner_id in ids:
            try:
                await bill_partner(pool, payments, partner_id, now, report)
            except Exception as exc:
                log.exception("account.cycle_failed", partner_id=partner_id)
                report.errors.append(f"{partner_id}: {exc}")
            report.partners += 1
        after = ids[-1]


async def bill_partner(pool: asyncpg.Pool, payments: PaymentProvider | None, partner_id: str, now: datetime,
                       report: CycleReport) -> None:
    cycle = cycle_of(now)
    start = cycle_start(cycle)
    async with pool.acquire() as conn, conn.transaction():
        partner = await store.partner(conn, partner_id, lock=True)
        if partner is None or partner.status is not PartnerStatus.ACTIVE:
            return
        if partner.pending_tier is not None and partner.pending_tier_from is not None \
                and partner.pending_tier_from <= now:
            partner = await _downgrade(conn, partner, now, report)
        built = await partner_schedule(conn, partner)
        units = await store.units(conn, partner_id)
        billing_from = partner.activated_at or partner.created_at
        charges = unit_charges(units, now=now, billing_from=billing_from, prices_at=prices_at(built, partner.tier))
        entries = [Entry(partner_id, EntryKind(c.entry_kind), -c.amount_micros, c.reference,
                         tenant_id=c.unit.tenant_id,
                         note=f"{cycle}{' prorated' if c.prorated else ''}") for c in charges]
        posted = await wallet_store.post_many(conn, entries)
        written = [p for p in posted if p.created]
        report.unit_entries += len(written)
        report.unit_micros += sum(-p.amount_micros for p in written)
        fee_prices = built.prices_at(partner.tier, start)
        tier, invoiced = partner.tier, partner.fee_invoiced
    # The month's platform fee: not for the month of activation (prorated then), and never twice.
    if invoiced or billing_from >= start or fee_prices is None or fee_prices.monthly_fee is None:
        return
    reference = f"sub:{cycle}"
    async with pool.acquire() as conn:
        due = await store.get_due(conn, partner_id, reference)
    if due is not None and due.status == "PAID":
        return
    if due is not None and not due.attempt_open and due.last_attempt_at is not None \
            and due.last_attempt_at.date() == now.date():
        return  # declined today already: retried tomorrow
    due = await dues.record_due(pool, partner_id, reference, "monthly", cycle,
                                [dues.line(f"{tier.value.title()} platform fee, {cycle}", fee_prices.monthly_fee)],
                                f"Platform fee {cycle} ({tier.value.title()})")
    outcome = await dues.settle(pool, payments, due, tier=tier, now=now)
    if isinstance(outcome, dues.Paid):
        report.fees_charged += 1
    else:
        report.fees_failed += 1


async def _downgrade(conn: Conn, partner: store.PartnerRow, now: datetime, report: CycleReport
                     ) -> store.PartnerRow:
    """A pending downgrade applies at the cycle start, if the partner still fits the lower cap."""
    assert partner.pending_tier is not None
    built = await partner_schedule(conn, partner)
    target: Tier = partner.pending_tier
    fits = plans.downgrade_due(target, built.prices_at(target, now), await store.extension_count(conn, partner.id))
    await store.set_tier(conn, partner.id, target if fits else partner.tier)
    await emit(conn, "subscription.updated", partner_id=partner.id, data={
        "partner_id": partner.id, "status": partner.status.value, "previous_tier": partner.tier.value,
        "tier": (target if fits else partner.tier).value, "pending_tier": None,
        "change": "downgrade_applied" if fits else "downgrade_cancelled_over_cap",
        "effective_at": now.isoformat()})
    log.info("account.downgrade", partner_id=partner.id, target=target.value, applied=fits)
    report.downgrades += 1 if fits else 0
    updated = await store.partner(conn, partner.id)
    assert updated is not None
    return updated


async def run_trial_expiry(pool: asyncpg.Pool, status_changed: AfterCommit[PartnerStatusChanged] | None,
                           now: datetime) -> list[str]:
    """Suspend every partner whose trial ended unactivated; the ids suspended by this run."""
    suspended: list[str] = []
    seen: set[str] = set()
    while True:
        async with pool.acquire() as conn:
            ids = await store.expired_trials(conn, now, PAGE + len(seen))
        ids = [i for i in ids if i not in seen]
        if not ids:
            return suspended
        for partner_id in ids:
            seen.add(partner_id)
            async with pool.acquire() as conn, conn.transaction():
                partner = await store.partner(conn, partner_id, lock=True)
                if partner is None or not plans.trial_expired(partner.status, partner.trial_ends_at, now):
                    continue  # activated meanwhile
                await store.set_status(conn, partner_id, PartnerStatus.SUSPENDED)
                await emit(conn, "subscription.updated", partner_id=partner_id,
                           data=status_event(partner, PartnerStatus.SUSPENDED, "trial_ended"))
            log.info("account.trial_ended", partner_id=partner_id)
            suspended.append(partner_id)
            if status_changed is not None:
                await status_changed.send(PartnerStatusChanged(partner_id, PartnerStatus.TRIAL.value,
                                                               PartnerStatus.SUSPENDED.value))
