"""The dunning schedule: what is due for one unpaid invoice at a given instant. Pure.

Seed 003 "Auto-suspend on non-payment": an unpaid invoice is Overdue ``overdue_after_days``
after its due date (7 by default) and its tenant is suspended ``suspend_after_days`` after it
(14 by default; None: never automatically, the partner suspends by hand). The card on file is
retried ``RETRY_AFTER_DAYS`` after the due date (collection's charge at issue is attempt 1, the
retries are attempts 2 to 5), the last one the day before the default suspension: a tenant whose
card works again pays before it is cut off. Retries stop at the suspension point whatever the terms.

Days are whole 24-hour days from the due instant (UTC): the suspension at day 14 of an invoice due
at 00:00 comes at 00:00 fourteen days later, whatever the tenant's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_OVERDUE_AFTER_DAYS = 7
DEFAULT_SUSPEND_AFTER_DAYS = 14
# Days after the due date on which the card is charged again (retries 1, 2, ...).
RETRY_AFTER_DAYS: tuple[int, ...] = (1, 3, 7, 13)
# Collection's attempt number of retry 1 (its charge when the invoice is issued is attempt 1).
FIRST_RETRY_ATTEMPT = 2


@dataclass(frozen=True, slots=True)
class Terms:
    """When an unpaid invoice turns Overdue and when its tenant is suspended (None: manual)."""

    overdue_after_days: int = DEFAULT_OVERDUE_AFTER_DAYS
    suspend_after_days: int | None = DEFAULT_SUSPEND_AFTER_DAYS


DEFAULT_TERMS = Terms()


@dataclass(frozen=True, slots=True)
class Done:
    """What dunning already did for the invoice (dunning_invoices)."""

    overdue: bool = False
    suspended: bool = False
    retries: int = 0


@dataclass(frozen=True, slots=True)
class Due:
    """What is due now: each is done once (``Done`` says what was)."""

    overdue: bool
    suspend: bool
    retry_attempt: int | None  # the retry to make now (1, 2, ...); None: none due


def overdue_at(due_at: datetime, terms: Terms) -> datetime:
    return due_at + timedelta(days=terms.overdue_after_days)


def suspend_at(due_at: datetime, terms: Terms) -> datetime | None:
    return None if terms.suspend_after_days is None else due_at + timedelta(days=terms.suspend_after_days)


def retry_attempt(due_at: datetime, now: datetime, retries: int) -> int | None:
    """The attempt due at ``now`` (the latest one whose day came), if not made yet. Missed days
    (the job did not run) are not made up: one charge per run, the latest."""
    came = sum(1 for days in RETRY_AFTER_DAYS if due_at + timedelta(days=days) <= now)
    return came if came > retries else None


def collection_attempt(retry: int) -> int:
    """The attempt number collection charges a retry under (its idempotency key)."""
    return FIRST_RETRY_ATTEMPT + retry - 1


def due(due_at: datetime, now: datetime, terms: Terms, done: Done) -> Due:
    """What dunning owes an unpaid invoice at ``now``."""
    suspension = suspend_at(due_at, terms)
    suspend = suspension is not None and now >= suspension and not done.suspended
    retry = None
    if suspension is None or now < suspension:
        retry = retry_attempt(due_at, now, done.retries)
    return Due(overdue=now >= overdue_at(due_at, terms) and not done.overdue, suspend=suspend,
               retry_attempt=retry)


def past_suspension(due_at: datetime, now: datetime, terms: Terms) -> bool:
    """Whether an unpaid invoice keeps its tenant suspended at ``now``."""
    suspension = suspend_at(due_at, terms)
    return suspension is not None and now >= suspension


def cause(invoice_id: str) -> str:
    """The suspension cause dunning stores on the tenant (and ``tenant.suspended`` carries)."""
    return f"dunning:{invoice_id}"


def invoice_of(cause_text: str | None) -> str | None:
    """The invoice a stored suspension cause names; None if dunning did not suspend."""
    if cause_text is None or not cause_text.startswith("dunning:"):
        return None
    return cause_text.removeprefix("dunning:") or None
