"""Billing cycles: a tenant's month starts on its anchor day at 00:00 in its timezone.

One definition for everything that counts by cycle (usage counters, caps,
threshold alerts), so the usage summary and the limits never disagree about
which month a call belongs to. Pure: ``now`` is always passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


def cycle_start(now: datetime, timezone: str = "UTC", anchor_day: int = 1) -> datetime:
    """Start (UTC) of the cycle containing ``now``.

    An anchor past the month's end (31 in February) falls on its last day.
    """
    if now.tzinfo is None:
        raise ValueError("now must be tz-aware")
    tz = ZoneInfo(timezone)
    local = now.astimezone(tz)
    year, month = local.year, local.month
    start = _anchor(year, month, anchor_day, tz)
    if start > local:
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        start = _anchor(year, month, anchor_day, tz)
    return start.astimezone(UTC)


def next_cycle_start(now: datetime, timezone: str = "UTC", anchor_day: int = 1) -> datetime:
    start = cycle_start(now, timezone, anchor_day).astimezone(ZoneInfo(timezone))
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return _anchor(year, month, anchor_day, ZoneInfo(timezone)).astimezone(UTC)


def cycle_date(at: datetime, timezone: str = "UTC", anchor_day: int = 1) -> date:
    """The cycle's name: its first day, as a date in the tenant's timezone."""
    return period_key(cycle_start(at, timezone, anchor_day), timezone)


def period_key(start: datetime, timezone: str) -> date:
    """A period's name, the key of its usage counters (``tenant_usage.cycle_start``): the day it
    starts on, in the tenant's timezone."""
    return start.astimezone(ZoneInfo(timezone)).date()


def _anchor(year: int, month: int, day: int, tz: ZoneInfo) -> datetime:
    last = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return datetime(year, month, min(day, last), tzinfo=tz)


# ---------------------------------------------------------------- the tenant's billing period
# The one rule (seed 003 "Invoice schedule"; docs/profiles.md): a Flat-rate tenant's period
# runs from its anniversary day (the day it was created, in its timezone), a PAYG tenant's
# is the calendar month; an explicit anchor day (limits' billing_anchor_day) wins over both.
# A profile switch takes effect at a period start, so periods never straddle two profiles;
# a trial's end or a change of model (whose anchor differs) cuts a short period.


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in UTC; ``key`` names it (its first day in the tenant's timezone)."""

    start: datetime
    end: datetime
    key: date


def anchor_day(flat: bool, activated_at: datetime, timezone: str = "UTC", override: int | None = None) -> int:
    """The day of the month a tenant's period starts on."""
    if override is not None:
        return override
    if not flat:
        return 1
    return activated_at.astimezone(ZoneInfo(timezone)).day


def period_at(at: datetime, timezone: str = "UTC", anchor: int = 1, since: datetime | None = None,
              until: datetime | None = None) -> Period:
    """The period containing ``at``, cut to [since, until) (the pricing in force: its
    assignment's start and the next assignment's) when those fall inside it."""
    start = cycle_start(at, timezone, anchor)
    end = next_cycle_start(at, timezone, anchor)
    if since is not None and start < since <= at:
        start = since
    if until is not None and at < until < end:
        end = until
    return Period(start, end, period_key(start, timezone))


def period_of(at: datetime, timezone: str, anchors: Sequence[tuple[datetime, int]], default_anchor: int = 1
              ) -> Period:
    """The period containing ``at`` for a tenant whose pricing changed over time:
    ``anchors`` is (since, anchor day) of each pricing, oldest first."""
    since: datetime | None = None
    until: datetime | None = None
    anchor = default_anchor
    for start, day in anchors:
        if start > at:
            until = start
            break
        since, anchor = start, day
    return period_at(at, timezone, anchor, since, until)
