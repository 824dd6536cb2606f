"""PIN lockout of a voicemail box: pure policy (controlplane.voicemail.services applies it).

The PIN is read and compared in the dialplan, which reports each attempt over AMI; the box
row keeps ``failures`` (wrong PINs since the last good one or the last lockout),
``lockouts`` (since the last good PIN) and ``locked_until``. While locked, the realtime
view says so and the dialplan refuses before asking for a PIN.

- ``MAX_FAILURES`` (5) wrong PINs in a row lock the box.
- The first lockout lasts ``BASE_LOCK`` (15 minutes); each further one without a good PIN
  in between doubles it, up to ``MAX_LOCK`` (24 hours): guessing a 4-digit PIN (10,000
  values) at 5 tries per lock would take years.
- A good PIN resets both counters. A PIN set through the API resets them and unlocks: the
  owner proved who they are another way.
- A failure reported while the box is locked (a race: two calls at once) counts nothing
  and leaves the lock as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["BASE_LOCK", "MAX_FAILURES", "MAX_LOCK", "LockState", "check_pin", "on_failure", "on_success"]

MAX_FAILURES = 5
BASE_LOCK = timedelta(minutes=15)
MAX_LOCK = timedelta(hours=24)
_PIN = re.compile(r"[0-9]{4,10}")
# PINs anyone tries first: refused on write.
_WEAK = frozenset({"0000", "1111", "1234", "12345", "123456", "4321", "2222", "9999", "1212"})


@dataclass(frozen=True, slots=True)
class LockState:
    failures: int = 0
    lockouts: int = 0
    locked_until: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


def lock_duration(lockouts: int) -> timedelta:
    """The length of the ``lockouts``-th lockout (1-based)."""
    doubled: timedelta = BASE_LOCK * (1 << min(max(lockouts - 1, 0), 16))
    return min(MAX_LOCK, doubled)


def on_failure(state: LockState, now: datetime) -> LockState:
    if state.locked(now):
        return state
    failures = state.failures + 1
    if failures < MAX_FAILURES:
        return LockState(failures, state.lockouts, state.locked_until)
    lockouts = state.lockouts + 1
    return LockState(0, lockouts, now + lock_duration(lockouts))


def on_success(state: LockState, now: datetime) -> LockState:
    # a success reported for a box that got locked meanwhile cannot unlock it
    return state if state.locked(now) else LockState()


def check_pin(pin: str, extension_number: str) -> str | None:
    """Why ``pin`` cannot be a voicemail PIN, or None: 4-10 digits, not a trivial one and
    not the extension's own number (the first thing a guesser tries)."""
    if not _PIN.fullmatch(pin):
        return "4 to 10 digits"
    if pin in _WEAK or len(set(pin)) == 1:
        return "too easy to guess"
    if pin == extension_number:
        return "must not be the extension number"
    return None
