"""The retry schedule of the partner guide."""

from __future__ import annotations

import pytest

from controlplane.webhooks import schedule


def test_delays_after_each_failure() -> None:
    assert [schedule.retry_delay(n) for n in range(1, 9)] == [30, 120, 600, 3600, 14400, 43200, 86400, None]


def test_eight_attempts_over_about_41_hours() -> None:
    assert schedule.MAX_ATTEMPTS == 8
    offsets = schedule.attempt_offsets()
    assert offsets[0] == 0 and len(offsets) == 8
    assert offsets[-1] == 30 + 120 + 600 + 3600 + 14400 + 43200 + 86400


def test_single_attempt_deliveries_die_after_one_failure() -> None:
    assert schedule.retry_delay(1, max_attempts=1) is None


def test_no_delay_before_any_attempt() -> None:
    with pytest.raises(ValueError):
        schedule.retry_delay(0)
