"""When to try again, and when to give up (partner guide, "Delivery and retries"). Pure."""

from __future__ import annotations

# Delay before attempt n+1 (seconds): immediate, 30 s, 2 min, 10 min, 1 h, 4 h, 12 h, 24 h.
DELAYS: tuple[int, ...] = (0, 30, 120, 600, 3_600, 14_400, 43_200, 86_400)
MAX_ATTEMPTS = len(DELAYS)
# An endpoint failing this many attempts in a row is disabled.
AUTO_DISABLE_AFTER = 100


def retry_delay(attempts_made: int, max_attempts: int = MAX_ATTEMPTS) -> int | None:
    """Seconds until the next attempt after ``attempts_made`` failed ones; None: DEAD."""
    if attempts_made < 1:
        raise ValueError("retry_delay is for after a failed attempt")
    if attempts_made >= max_attempts:
        return None
    return DELAYS[attempts_made]


def attempt_offsets() -> list[int]:
    """Seconds from the first attempt to each attempt, assuming instant failures."""
    offsets, total = [], 0
    for delay in DELAYS:
        total += delay
        offsets.append(total)
    return offsets
