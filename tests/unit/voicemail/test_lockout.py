"""controlplane.voicemail.lockout: five wrong PINs lock the box, each lockout twice as long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.voicemail.lockout import (BASE_LOCK, MAX_FAILURES, MAX_LOCK, LockState, check_pin, on_failure,
                                            on_success)

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def fail(state: LockState, times: int, now: datetime) -> LockState:
    for _ in range(times):
        state = on_failure(state, now)
    return state


def test_five_wrong_pins_lock_for_fifteen_minutes() -> None:
    state = fail(LockState(), MAX_FAILURES - 1, T0)
    assert not state.locked(T0) and state.failures == MAX_FAILURES - 1
    state = on_failure(state, T0)
    assert state.locked(T0) and state.locked_until == T0 + BASE_LOCK and state.lockouts == 1
    assert not state.locked(T0 + BASE_LOCK)


def test_failures_while_locked_change_nothing() -> None:
    locked = fail(LockState(), MAX_FAILURES, T0)
    assert on_failure(locked, T0 + timedelta(minutes=1)) == locked
    assert on_success(locked, T0 + timedelta(minutes=1)) == locked  # a late success cannot unlock


def test_each_further_lockout_doubles_up_to_a_day() -> None:
    state, now, lengths = LockState(), T0, []
    for _ in range(10):
        state = fail(state, MAX_FAILURES, now)
        assert state.locked_until is not None
        lengths.append(state.locked_until - now)
        now = state.locked_until
    assert lengths[:3] == [BASE_LOCK, 2 * BASE_LOCK, 4 * BASE_LOCK]
    assert max(lengths) == MAX_LOCK


def test_a_good_pin_resets_everything() -> None:
    state = fail(fail(LockState(), MAX_FAILURES, T0), 2, T0 + BASE_LOCK)
    assert on_success(state, T0 + BASE_LOCK) == LockState()


@pytest.mark.parametrize(("pin", "ok"), [
    ("4826", True), ("0482619375", True), ("123", False), ("12345678901", False), ("12a4", False),
    ("1234", False), ("7777", False), ("0000", False), ("101", False), ("1010", True), ("", False),
    ("48 26", False), ("4826\n", False),
])
def test_pin_shape(pin: str, ok: bool) -> None:
    assert (check_pin(pin, "101") is None) is ok


def test_the_extension_number_is_not_a_pin() -> None:
    assert check_pin("4826", "4826") == "must not be the extension number"
