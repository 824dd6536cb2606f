"""When to try a mail again, and when to give up. Pure."""

from __future__ import annotations

# Delay before attempt n+1 (seconds): 30 s, 2 min, 10 min, 30 min, 1 h, 4 h, 12 h.
DELAYS: tuple[int, ...] = (30, 120, 600, 1_800, 3_600, 14_400, 43_200)
MAX_ATTEMPTS = len(DELAYS) + 1


def retry_delay(attempts_made: int, max_attempts: int = MAX_ATTEMPTS) -> int | None:
    """Seconds until the next attempt after ``attempts_made`` failed ones; None: give up (DEAD)."""
    if attempts_made < 1:
        raise ValueError("retry_delay is for after a failed attempt")
    if attempts_made >= max_attempts:
        return None
    return DELAYS[min(attempts_made, len(DELAYS)) - 1]
