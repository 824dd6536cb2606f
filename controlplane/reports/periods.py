"""Report periods in the partner's time zone. Pure: no I/O.

A period is a run of whole local days [first, last], i.e. the instants
[first 00:00 local, (last + 1) 00:00 local). Presets end with today (local) included:
``7d`` is today and the 6 days before it. The prior period is the same number of days
just before. Months are local calendar months; "the 1st" is local midnight of day 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from controlplane.shared.problems import FieldError, Problem

PRESETS: dict[str, int] = {"7d": 7, "30d": 30, "90d": 90, "1y": 365}
DEFAULT_PRESET = "30d"
MAX_DAYS = 3 * 366  # an explicit range longer than this is refused (422)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def zone_problem(name: object) -> str | None:
    """Why ``name`` is not an IANA zone name, or None."""
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or "\n" in name:
        return "an IANA time zone name such as Europe/Paris or UTC"
    if name not in available_timezones() and name != "UTC":
        return f"unknown time zone {name!r}"
    return None


def midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant of local midnight starting ``day``."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def local_day(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


@dataclass(frozen=True)
class Period:
    first: date  # local, inclusive
    last: date  # local, inclusive
    timezone: str
    preset: str | None = None

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> datetime:
        return midnight(self.first, zone(self.timezone))

    @property
    def end(self) -> datetime:
        return midnight(self.last + timedelta(days=1), zone(self.timezone))

    def prior(self) -> Period:
        """The same number of days, just before."""
        return Period(self.first - timedelta(days=self.days), self.first - timedelta(days=1), self.timezone, self.preset)


def _parse_date(value: str, name: str, errors: list[FieldError]) -> date | None:
    if not _DATE.match(value):
        errors.append(FieldError(name, f"{name}: a date YYYY-MM-DD"))
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append(FieldError(name, f"{name}: not a calendar date"))
        return None


def resolve(query: dict[str, str], timezone: str, now: datetime) -> Period:
    """``period`` (7d / 30d / 90d / 1y) or ``from`` + ``to`` (local dates, inclusive); 422 naming
    every field at fault. Without any: the last 30 days."""
    errors: list[FieldError] = []
    preset, start, end = query.get("period"), query.get("from"), query.get("to")
    if preset is not None and (start is not None or end is not None):
        errors.append(FieldError("period", "period: give either period or from and to, not both"))
    if preset is not None and preset not in PRESETS:
        errors.append(FieldError("period", f"period: one of {', '.join(PRESETS)}"))
    if (start is None) != (end is None):
        missing = "to" if end is None else "from"
        errors.append(FieldError(missing, f"{missing}: from and to go together"))
    first = _parse_date(start, "from", errors) if start is not None else None
    last = _parse_date(end, "to", errors) if end is not None else None
    if first is not None and last is not None:
        if last < first:
            errors.append(FieldError("to", "to: on or after from"))
        elif (last - first).days + 1 > MAX_DAYS:
            errors.append(FieldError("to", f"to: at most {MAX_DAYS} days after from"))
    if errors:
        raise Problem(422, "; ".join(e.message for e in errors), errors=errors)
    if first is not None and last is not None:
        return Period(first, last, timezone)
    name = preset or DEFAULT_PRESET
    today = local_day(now, zone(timezone))
    return Period(today - timedelta(days=PRESETS[name] - 1), today, timezone, name)


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def last_months(until: date, count: int = 12) -> list[tuple[date, date]]:
    """``count`` local months ending with the one holding ``until``: (first day, first day of next)."""
    last = month_start(until)
    return [(add_months(last, -i), add_months(last, -i + 1)) for i in range(count - 1, -1, -1)]


def parse_month(value: str | None, timezone: str, now: datetime) -> date:
    """``until`` (YYYY-MM) as the month's first day; default: the current local month."""
    if value is None:
        return month_start(local_day(now, zone(timezone)))
    if not _MONTH.match(value) or not 1 <= int(value[5:]) <= 12:
        raise Problem(422, "until: a month YYYY-MM", field="until")
    return date(int(value[:4]), int(value[5:]), 1)


def churn_windows(today: date) -> tuple[tuple[date, date], tuple[date, date]]:
    """(last 30 days, the 30 before) as inclusive local day ranges; the last ends with today."""
    recent = (today - timedelta(days=29), today)
    before = (today - timedelta(days=59), today - timedelta(days=30))
    return recent, before


def whole_months(first: date, last: date) -> tuple[date, date]:
    """[from, to): the calendar months lying wholly inside first..last (from == to: none)."""
    start = first if first.day == 1 else add_months(first, 1)
    end = month_start(last + timedelta(days=1))
    return (start, end) if start < end else (last + timedelta(days=1), last + timedelta(days=1))
