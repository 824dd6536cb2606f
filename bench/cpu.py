"""CPU milliseconds spent by a set of processes over a measured window (from /proc/<pid>/stat).

The call-path benches print the daemon's and Asterisk's CPU per call beside the rates: on
two cores every millisecond the daemon spends per call is taken from Asterisk, PostgreSQL
and SIPp, so a regression in the daemon's per-call work shows as a number even when the
rate hides it (the rate is capped by the offered load).

utime + stime of /proc/<pid>/stat (fields 14 and 15, in clock ticks) count every thread of
the process. The daemon runs inside the bench process, so its figure also holds the
bench's own bookkeeping during the window (a callback per record, two /metrics scrapes):
small, and on the daemon's side of the ledger, so the figure errs high, never low.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


def cpu_ms(pid: int) -> float:
    """utime + stime of ``pid`` in milliseconds (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def switches(pid: int) -> int:
    """Voluntary context switches (waits) of every thread of ``pid`` so far (0 when gone).

    Each wait for a reply costs a thread a switch out and back; on a virtual machine a
    switch is dear, so a per-call count shows the cost of a round trip that CPU time hides
    in the kernel's share."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/status") as status:
                for line in status:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.rsplit(None, 1)[-1])
        except (OSError, ValueError):
            continue
    return total


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (PostgreSQL's backends under its postmaster)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def postmaster_pid(pgdata: str) -> int:
    with open(os.path.join(pgdata, "postmaster.pid")) as lines:
        return int(lines.readline())


@dataclass
class CpuMeter:
    """Named processes, measured between ``start()`` and ``stop()`` (can be repeated: deltas add up)."""

    pids: dict[str, int]
    # Named process trees (a pid and its children, e.g. PostgreSQL's postmaster and backends);
    # a backend that exits inside the window takes its ticks with it, so the pools of the
    # daemon and the bench are opened before ``start()``.
    trees: dict[str, int] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)
    switched: dict[str, int] = field(default_factory=dict)
    _at: dict[str, float] = field(default_factory=dict)
    _switches_at: dict[str, int] = field(default_factory=dict)

    def _now(self) -> dict[str, float]:
        now = {name: cpu_ms(pid) for name, pid in self.pids.items()}
        for name, pid in self.trees.items():
            now[name] = cpu_ms(pid) + sum(cpu_ms(child) for child in children(pid))
        return now

    def start(self) -> None:
        self._at = self._now()
        self._switches_at = {name: switches(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        for name, ms in self._now().items():
            self.spent[name] = self.spent.get(name, 0.0) + ms - self._at.get(name, 0.0)
        for name, pid in self.pids.items():
            self.switched[name] = self.switched.get(name, 0) + switches(pid) - self._switches_at.get(name, 0)

    def per_call(self, calls: float) -> dict[str, float]:
        return {name: ms / max(calls, 1) for name, ms in self.spent.items()}

    def line(self, calls: float) -> str:
        per = self.per_call(calls)
        cpu = ", ".join(f"{name} {ms:.2f} ms/call ({self.spent[name] / 1000:.1f} s CPU)" for name, ms in per.items())
        switched = ", ".join(f"{name} {n / max(calls, 1):.0f}" for name, n in self.switched.items())
        return f"{cpu}; waits (voluntary switches) per call: {switched}"
