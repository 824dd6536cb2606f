"""The dunning schedule (controlplane.dunning.schedule): pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.dunning.schedule import (
    DEFAULT_TERMS, RETRY_AFTER_DAYS, Done, Terms, cause, due, invoice_of, past_suspension, retry_attempt)

DUE = datetime(2026, 3, 15, 0, 0, tzinfo=UTC)


def at(days: float) -> datetime:
    return DUE + timedelta(days=days)


def test_defaults_are_seven_and_fourteen_days() -> None:
    assert DEFAULT_TERMS == Terms(7, 14)


@pytest.mark.parametrize(("days", "overdue", "suspend"), [
    (0, False, False), (6.99, False, False), (7, True, False), (13.99, True, False), (14, True, True),
    (40, True, True)])
def test_overdue_at_seven_suspended_at_fourteen(days: float, overdue: bool, suspend: bool) -> None:
    step = due(DUE, at(days), DEFAULT_TERMS, Done())
    assert (step.overdue, step.suspend) == (overdue, suspend)


def test_each_step_once() -> None:
    done = Done(overdue=True, suspended=True, retries=len(RETRY_AFTER_DAYS))
    step = due(DUE, at(20), DEFAULT_TERMS, done)
    assert (step.overdue, step.suspend, step.retry_attempt) == (False, False, None)


def test_manual_suspension_never_suspends_and_keeps_flagging() -> None:
    terms = Terms(overdue_after_days=3, suspend_after_days=None)
    step = due(DUE, at(400), terms, Done())
    assert step.overdue and not step.suspend
    assert not past_suspension(DUE, at(400), terms)


def test_custom_days() -> None:
    terms = Terms(overdue_after_days=0, suspend_after_days=2)
    assert due(DUE, DUE, terms, Done()).overdue
    assert not due(DUE, at(1.5), terms, Done()).suspend
    assert due(DUE, at(2), terms, Done()).suspend
    assert past_suspension(DUE, at(2), terms) and not past_suspension(DUE, at(1.9), terms)


def test_retries_on_their_days_one_per_run_latest_wins() -> None:
    assert retry_attempt(DUE, at(0.5), 0) is None
    assert retry_attempt(DUE, at(1), 0) == 1
    assert retry_attempt(DUE, at(1), 1) is None  # made already
    assert retry_attempt(DUE, at(3), 1) == 2
    # The job did not run for a week: the latest attempt is made, the missed ones are not made up.
    assert retry_attempt(DUE, at(8), 1) == 3
    assert retry_attempt(DUE, at(13), 3) == 4
    assert retry_attempt(DUE, at(30), 4) is None


def test_retries_are_collection_attempts_two_on() -> None:
    from controlplane.dunning.schedule import collection_attempt
    assert [collection_attempt(r) for r in (1, 2, 3, 4)] == [2, 3, 4, 5]


def test_retries_stop_at_the_suspension_point() -> None:
    assert due(DUE, at(13), DEFAULT_TERMS, Done(retries=3)).retry_attempt == 4
    assert due(DUE, at(14), DEFAULT_TERMS, Done(retries=3)).retry_attempt is None
    early = Terms(overdue_after_days=1, suspend_after_days=2)
    assert due(DUE, at(5), early, Done(retries=1)).retry_attempt is None


def test_cause_names_the_invoice() -> None:
    assert cause("inv_123") == "dunning:inv_123"
    assert invoice_of("dunning:inv_123") == "inv_123"
    assert invoice_of("manual") is None and invoice_of("usage_cap:max_dids") is None and invoice_of(None) is None
    assert invoice_of("dunning:") is None
