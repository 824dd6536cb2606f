"""Billing cycles: a tenant's month starts on its anchor day at 00:00 in its timezone.

One definition for everything that counts by cycle (usage counters, caps,
threshold alerts), so the usage summary and the limits never disagree about
which month a call belongs to. Pure: ``now`` is always passed in.
"""

from __future__ import annotations

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
    return cycle_start(at, timezone, anchor_day).astimezone(ZoneInfo(timezone)).date()


def _anchor(year: int, month: int, day: int, tz: ZoneInfo) -> datetime:
    last = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return datetime(year, month, min(day, last), tzinfo=tz)
