"""Processes seen through /proc: alive (every thread gone?), start time, uptime; signals, waiting."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()  # fields from #3 (state) on


def alive(pid: int) -> bool:
    """True while any thread of ``pid`` runs.

    After SIGKILL the main thread turns zombie before the other threads have
    exited, and until the last one has, the process still holds its sockets (the
    control socket even accepts connections). Only when every thread is gone is
    the process really dead.
    """
    fields = proc_stat(pid)
    if fields is None:
        return False
    try:
        tasks = [entry.name for entry in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return fields[0] not in ("Z", "X")
    for tid in tasks:
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        if raw[raw.rfind(")") + 2] not in ("Z", "X"):
            return True
    return False


def proc_start(pid: int) -> int | None:
    fields = proc_stat(pid)
    return int(fields[19]) if fields else None  # field #22: start time in clock ticks after boot


def proc_uptime(pid: int) -> float | None:
    start = proc_start(pid)
    if start is None:
        return None
    with contextlib.suppress(OSError, ValueError):
        since_boot = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, since_boot - start / os.sysconf("SC_CLK_TCK"))
    return None


def send_signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pid: int, timeout: float) -> bool:
    """True once ``pid`` is really gone (see ``alive``), False if it outlives ``timeout``."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
