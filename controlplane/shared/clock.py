"""The test seam between a worker's schedule and time, shared by the mail and webhook workers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass
class Clock:
    """The seam between the schedule and time: every due-time comparison uses ``now() + offset``."""

    offset: timedelta = timedelta(0)

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)
