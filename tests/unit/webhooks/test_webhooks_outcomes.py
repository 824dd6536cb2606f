"""What the worker makes of a batch of outcomes: next states and failure tallies."""

from __future__ import annotations

from datetime import UTC, datetime

from controlplane.webhooks.models import DeliveryStatus, Job, Outcome
from controlplane.webhooks.worker import _next_state, _tallies

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def outcome(endpoint: str, ok: bool, attempts: int = 0, max_attempts: int = 8) -> Outcome:
    job = Job(1, endpoint, "evt_x", "tenant.created", b"{}", "https://x", b"", attempts, max_attempts, NOW)
    return Outcome(job, ok, 200 if ok else 500, None, b"", False, NOW)


def test_next_state_follows_the_schedule() -> None:
    assert _next_state(outcome("a", True)) == (DeliveryStatus.DELIVERED, 0.0)
    assert _next_state(outcome("a", False, attempts=0)) == (DeliveryStatus.FAILED, 30.0)
    assert _next_state(outcome("a", False, attempts=6)) == (DeliveryStatus.FAILED, 86400.0)
    assert _next_state(outcome("a", False, attempts=7)) == (DeliveryStatus.DEAD, 0.0)
    assert _next_state(outcome("a", False, attempts=0, max_attempts=1)) == (DeliveryStatus.DEAD, 0.0)


def test_tallies_count_failures_after_the_last_success() -> None:
    batch = [outcome("a", False), outcome("a", True), outcome("a", False), outcome("a", False),
             outcome("b", False), outcome("b", False)]
    tallies = {t.endpoint_id: t for t in _tallies(batch)}
    assert (tallies["a"].reset, tallies["a"].failures) == (True, 2)
    assert (tallies["b"].reset, tallies["b"].failures) == (False, 2)
