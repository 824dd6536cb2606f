"""Billing cycles: anchor day, tenant timezone, short months, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cdr_ingest.cycles import cycle_date, cycle_start, next_cycle_start


def test_cycles_follow_the_anchor_day_in_the_tenant_timezone() -> None:
    now = datetime(2024, 3, 10, 3, 0, tzinfo=UTC)  # 2024-03-09 22:00 in New York
    assert cycle_start(now, "UTC") == datetime(2024, 3, 1, tzinfo=UTC)
    assert cycle_start(now, "America/New_York", 10) == datetime(2024, 2, 10, 5, 0, tzinfo=UTC)
    # 00:00 EST: DST starts at 02:00 that day
    assert next_cycle_start(now, "America/New_York", 10) == datetime(2024, 3, 10, 5, 0, tzinfo=UTC)
    assert cycle_start(datetime(2024, 3, 5, tzinfo=UTC), "UTC", 31) == datetime(2024, 2, 29, tzinfo=UTC)


def test_the_cycle_is_named_by_its_local_first_day() -> None:
    # 2024-03-15 02:00 UTC is still the 14th in Los Angeles: the February cycle.
    assert cycle_date(datetime(2024, 3, 15, 2, 0, tzinfo=UTC), "America/Los_Angeles", 15) == date(2024, 2, 15)
    assert cycle_date(datetime(2024, 3, 15, 9, 0, tzinfo=UTC), "America/Los_Angeles", 15) == date(2024, 3, 15)
    assert cycle_date(datetime(2024, 12, 31, 23, 0, tzinfo=UTC)) == date(2024, 12, 1)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
       st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]),
       st.integers(1, 31))
def test_every_instant_is_in_exactly_one_cycle(now: datetime, tz: str, anchor: int) -> None:
    start, end = cycle_start(now, tz, anchor), next_cycle_start(now, tz, anchor)
    assert start <= now < end
    assert timedelta(days=27) < end - start < timedelta(days=32)
    assert cycle_start(end, tz, anchor) == end  # the next cycle starts where this one ends
