"""The dunning job and the reaction to a paid invoice.

``run_dunning(pool, signals, now)`` is a plain async function of the clock: the plugin runs it
every ``INTERVAL_S`` with the wall clock, tests drive it with any ``now``. For every unpaid
invoice past its due date (``invoices.store.unpaid_due_before``) it does what the schedule
(``dunning.schedule``) says is due and was not done yet: the card retried through collection,
the invoice flagged OVERDUE, the tenant suspended (``signals.suspension_due`` with the cause
"dunning:<invoice id>", which the tenants capability stores). Then every tenant that dunning
suspended and that owes nothing past a suspension point any more is reactivated
(``signals.reactivation_due``): the same as the ``invoice_paid`` handler does at once, so a
payment whose signal was lost (a crash after commit) still reactivates at the next run.

Run twice, concurrently, or killed half-way, each transition happens once: an invoice's row in
``dunning_invoices`` is locked while it is worked on and records what was done; the tenants
capability suspends or reactivates only a tenant not already in that state (under its row lock),
and the retry's attempt number is collection's idempotency key. A suspension is sent before it
is recorded (a crash in between sends it again at the next run: the tenant is already suspended,
nothing happens), never recorded before it is sent (a crash would lose it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

import asyncpg
import structlog

from controlplane.dunning import schedule, store
from controlplane.dunning.schedule import Terms
from controlplane.invoices import store as invoices
from controlplane.invoices.models import Invoice, InvoiceStatus
from controlplane.profiles import store as profiles
from controlplane.signals import InvoicePaid, ReactivationDue, Signals, SuspensionDue
from controlplane.tenants import store as tenants

log = structlog.get_logger(__name__)
INTERVAL_S = 3600.0
UNPAID = frozenset({InvoiceStatus.SENT, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.OVERDUE})
# Collection's charge of what an invoice still owes to the tenant's default card:
# collect(invoice id, attempt), idempotent by the attempt (controlplane.collection.charges).
Collect = Callable[[str, int], Awaitable[object]]


@dataclass
class DunningReport:
    invoices: int = 0  # unpaid invoices past their due date
    overdue: int = 0  # flagged OVERDUE by this run
    suspended: int = 0  # suspensions sent by this run
    retries: int = 0  # card retries made by this run
    reactivations: int = 0  # reactivations sent by this run
    errors: list[str] = field(default_factory=list)


@dataclass
class _TermsCache:
    partners: dict[str, Terms | None] = field(default_factory=dict)

    async def of(self, conn: store.Conn, invoice: Invoice) -> Terms:
        """The partner's own days if it set them (its account-wide policy), else the tenant's billing
        profile as of the invoice's period, else 7 / 14."""
        if invoice.partner_id not in self.partners:
            self.partners[invoice.partner_id] = await store.partner_terms(conn, invoice.partner_id)
        own = self.partners[invoice.partner_id]
        if own is not None:
            return own
        terms = await profiles.terms_at(conn, invoice.tenant_id, invoice.period_start)
        if terms is None:
            return schedule.DEFAULT_TERMS
        return Terms(terms.overdue_after_days, terms.suspend_after_days)


async def run_dunning(pool: asyncpg.Pool, signals: Signals, now: datetime,
                      collect: Collect | None = None) -> DunningReport:
    """One pass at ``now``; one invoice's failure stops no other."""
    report = DunningReport()
    cache = _TermsCache()
    async with pool.acquire() as conn:
        unpaid = await invoices.unpaid_due_before(conn, now)
    for invoice in unpaid:
        report.invoices += 1
        try:
            await _dun(pool, signals, invoice, now, cache, collect, report)
        except Exception as exc:
            log.exception("dunning.invoice_failed", invoice_id=invoice.id)
            report.errors.append(f"{invoice.id}: {exc}")
    try:
        report.reactivations = await reactivate_paid_up(pool, signals)
    except Exception as exc:
        log.exception("dunning.reactivation_sweep_failed")
        report.errors.append(f"reactivation sweep: {exc}")
    if report.overdue or report.suspended or report.retries or report.reactivations or report.errors:
        log.info("dunning.run", at=now.isoformat(), invoices=report.invoices, overdue=report.overdue,
                 suspended=report.suspended, retries=report.retries, reactivations=report.reactivations,
                 errors=len(report.errors))
    return report


async def _dun(pool: asyncpg.Pool, signals: Signals, invoice: Invoice, now: datetime, cache: _TermsCache,
               collect: Collect | None, report: DunningReport) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            done = await store.track(conn, invoice.id, invoice.partner_id, invoice.tenant_id)
            current = await invoices.get(conn, invoice.id)  # re-read under the row lock: paid meanwhile?
            if current is None or current.status not in UNPAID or current.due_at is None:
                return
            terms = await cache.of(conn, current)
            # Flagged once: a partial payment after it (OVERDUE -> PARTIALLY_PAID) is not flagged again.
            done = replace(done, overdue=done.overdue or current.status is InvoiceStatus.OVERDUE)
            due = schedule.due(current.due_at, now, terms, done)
            if due.overdue:
                await invoices.set_status(conn, current.id, InvoiceStatus.OVERDUE)
                await store.mark_overdue(conn, current.id, now)
                report.overdue += 1
                log.info("dunning.overdue", invoice_id=current.id, tenant_id=current.tenant_id,
                         due_at=current.due_at.isoformat())
    # Outside any transaction and connection: the charge talks to the provider, the suspension's
    # handler takes its own connection.
    if due.retry_attempt is not None and collect is not None:
        # The attempt number is collection's idempotency key: a second run making the same
        # attempt (concurrently, or after a crash before it was recorded) charges once.
        await collect(current.id, schedule.collection_attempt(due.retry_attempt))
        async with pool.acquire() as conn:
            await store.mark_retried(conn, current.id, due.retry_attempt, now)
        report.retries += 1
        log.info("dunning.retried", invoice_id=current.id, attempt=due.retry_attempt)
    if due.suspend:
        cause = schedule.cause(current.id)
        await signals.suspension_due.send(SuspensionDue(current.partner_id, current.tenant_id, cause))
        async with pool.acquire() as conn:
            await store.mark_suspended(conn, current.id, now)
        report.suspended += 1
        log.info("dunning.suspension_due", invoice_id=current.id, tenant_id=current.tenant_id, cause=cause)


async def owes_past_suspension(conn: store.Conn, tenant_id: str) -> bool:
    """Whether an invoice dunning suspended the tenant for is still unpaid."""
    for invoice_id in await store.suspended_invoices(conn, tenant_id):
        invoice = await invoices.get(conn, invoice_id)
        if invoice is not None and invoice.status in UNPAID:
            return True
    return False


async def reactivate_paid_up(pool: asyncpg.Pool, signals: Signals, tenant_id: str | None = None) -> int:
    """Send ``reactivation_due`` for every tenant (or this one) that dunning suspended and whose
    invoices behind a suspension are all settled; the count sent. The tenants capability
    reactivates only while the stored cause is still the one sent."""
    async with pool.acquire() as conn:
        suspended = await tenants.suspended_for(conn, "dunning:")
        due = [(p, t, c) for p, t, c in suspended
               if (tenant_id is None or t == tenant_id) and not await owes_past_suspension(conn, t)]
    for partner, tenant, cause in due:
        await signals.reactivation_due.send(ReactivationDue(partner, tenant, cause))
        log.info("dunning.reactivation_due", tenant_id=tenant, cause=cause)
    return len(due)


async def invoice_paid(pool: asyncpg.Pool, signals: Signals, paid: InvoicePaid) -> None:
    """The ``invoice_paid`` handler: the tenant is reactivated if dunning suspended it and no
    invoice it was suspended for is still unpaid (another unpaid one keeps it suspended; its
    payment reactivates it then)."""
    sent = await reactivate_paid_up(pool, signals, paid.tenant_id)
    if not sent:
        log.info("dunning.paid_no_reactivation", invoice_id=paid.invoice_id, tenant_id=paid.tenant_id)
