"""The reports' pure parts: periods in the partner's zone, the figures' arithmetic, the chart."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from PIL import Image

from controlplane.reports import figures
from controlplane.reports.chart import revenue_chart
from controlplane.reports.monthly import due_month
from controlplane.reports.periods import Period, churn_windows, last_months, resolve, zone_problem
from controlplane.shared.problems import Problem

NOW = datetime(2026, 3, 8, 4, 30, tzinfo=UTC)  # still Mar 7 in New York, the night DST starts


def test_presets_end_today_in_the_partners_zone() -> None:
    p = resolve({"period": "7d"}, "America/New_York", NOW)
    assert (p.first, p.last, p.days) == (date(2026, 3, 1), date(2026, 3, 7), 7)
    assert p.start == datetime(2026, 3, 1, 5, tzinfo=UTC) and p.end == datetime(2026, 3, 8, 5, tzinfo=UTC)
    assert resolve({}, "UTC", NOW).days == 30 and resolve({}, "UTC", NOW).last == date(2026, 3, 8)
    prior = p.prior()
    assert (prior.first, prior.last) == (date(2026, 2, 22), date(2026, 2, 28))


def test_a_local_day_across_the_dst_change_is_23_hours() -> None:
    p = Period(date(2026, 3, 8), date(2026, 3, 8), "America/New_York")
    assert (p.end - p.start).total_seconds() == 23 * 3600


def test_bad_periods_name_every_field() -> None:
    with pytest.raises(Problem) as caught:
        resolve({"period": "2w", "from": "2026-02-30"}, "UTC", NOW)
    assert {e.field for e in caught.value.errors} == {"period", "to", "from"}
    with pytest.raises(Problem) as caught:
        resolve({"from": "2026-03-02", "to": "2026-03-01"}, "UTC", NOW)
    assert [e.field for e in caught.value.errors] == ["to"]
    assert resolve({"from": "2026-01-01", "to": "2026-01-31"}, "UTC", NOW).days == 31


def test_months_and_churn_windows() -> None:
    months = last_months(date(2026, 2, 14))
    assert months[0] == (date(2025, 3, 1), date(2025, 4, 1)) and months[-1] == (date(2026, 2, 1), date(2026, 3, 1))
    recent, prior = churn_windows(date(2026, 3, 31))
    assert recent == (date(2026, 3, 2), date(2026, 3, 31)) and prior == (date(2026, 1, 31), date(2026, 3, 1))


def test_zone_names() -> None:
    assert zone_problem("Europe/Paris") is None and zone_problem("UTC") is None
    assert zone_problem("Mars/Olympus") and zone_problem("") and zone_problem(5)


def test_arithmetic_rounds_half_up_and_says_null_for_nothing() -> None:
    assert figures.div_half_up(5, 2) == 3 and figures.div_half_up(-5, 2) == -3 and figures.div_half_up(1, 0) == 0
    assert figures.percent(1, 3) == "33.33" and figures.percent(2, 3) == "66.67" and figures.percent(1, 0) is None
    assert figures.growth(90, 100) == "-10.00" and figures.growth(5, 0) is None and figures.growth(-50, -100) == "50.00"
    assert figures.points("93.75", "91.67") == "2.08" and figures.points(None, "1") is None
    assert figures.show(156_305_000, "USD") == "156.31 USD" and figures.show(-1_234_567_890, "USD") == "-1,234.57 USD"


def test_the_minutes_drop_is_more_than_half() -> None:
    assert figures.minutes_dropped(49, 100) and not figures.minutes_dropped(50, 100)
    assert not figures.minutes_dropped(0, 0) and figures.minutes_dropped(0, 6)


def test_a_credit_note_is_counted_net_of_its_tax_share() -> None:
    # 156.31 total with 12.25 tax: 100.00 refunded carries 7.836991 of tax (to the micro, half up)
    assert figures.credit_note_net(100_000_000, 12_250_000, 156_310_000) == 92_163_009
    assert figures.credit_note_net(10_000, 0, 0) == 10_000


def test_the_report_is_due_from_the_local_1st_for_a_week() -> None:
    assert due_month(datetime(2026, 12, 1, 4, 59, tzinfo=UTC), "America/New_York") is None
    assert due_month(datetime(2026, 12, 1, 5, 0, tzinfo=UTC), "America/New_York") == date(2026, 11, 1)
    assert due_month(datetime(2026, 1, 7, 12, tzinfo=UTC), "UTC") == date(2025, 12, 1)
    assert due_month(datetime(2026, 1, 8, 0, tzinfo=UTC), "UTC") is None


def test_the_chart_decodes_and_follows_the_figures() -> None:
    bars = [(f"2026-{m:02d}", m * 1_000_000_000) for m in range(1, 13)]
    png = revenue_chart(bars, "USD")
    assert revenue_chart(bars, "USD") == png
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG" and image.size == (800, 320)
    changed = revenue_chart([*bars[:5], ("2026-06", 1), *bars[6:]], "USD")
    assert changed != png and Image.open(io.BytesIO(changed)).tobytes() != image.tobytes()
