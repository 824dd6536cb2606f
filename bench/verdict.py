"""Every bench's figures, targets and verdicts, said the same way (docs/operations.md).

A bench records each figure with its target (``at_least``, ``at_most``, ``below``,
``exactly``), or without one (``info``), or says a part could not run (``skipped``) or
broke (``broken``). ``finish()`` prints the verdict block and returns the exit code:

    0  every target met (and nothing skipped under CI)
    1  a target missed, or a part broke
    3  a part skipped (no root, no SIPp, ...) while CI is set; outside CI a skip exits 0,
       and says SKIPPED

With ``BENCH_RESULTS=<file>`` in the environment (``bench/run_all`` sets it) the figures
are also appended to that file as JSON lines, for the one table of every bench.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

MET, MISSED, SKIPPED, INFO, BROKEN = "MET", "MISSED", "SKIPPED", "INFO", "BROKEN"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@dataclass
class Figure:
    bench: str
    name: str
    value: float | None
    unit: str
    target: str
    verdict: str
    note: str = ""

    def shown(self) -> str:
        if self.value is None:
            return "-"
        return number(self.value) + (f" {self.unit}" if self.unit else "")


def number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.3f}".rstrip("0").rstrip(".") or "0"


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``: the nearest rank over the n - 1 gaps."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _target(op: str, target: float, unit: str) -> str:
    return f"{op} {number(target)}{' ' + unit if unit else ''}"


@dataclass
class Verdicts:
    bench: str
    figures: list[Figure] = field(default_factory=list)

    def _add(self, name: str, value: float | None, unit: str, target: str, verdict: str, note: str = "") -> bool:
        self.figures.append(Figure(self.bench, name, value, unit, target, verdict, note))
        return verdict in (MET, INFO)

    def at_least(self, name: str, value: float, target: float, unit: str = "") -> bool:
        return self._add(name, value, unit, _target(">=", target, unit),
                         MET if value >= target else MISSED)

    def at_most(self, name: str, value: float, target: float, unit: str = "") -> bool:
        return self._add(name, value, unit, _target("<=", target, unit),
                         MET if value <= target else MISSED)

    def below(self, name: str, value: float, target: float, unit: str = "") -> bool:
        return self._add(name, value, unit, _target("<", target, unit),
                         MET if value < target else MISSED)

    def exactly(self, name: str, value: float, target: float, unit: str = "") -> bool:
        return self._add(name, value, unit, _target("=", target, unit), MET if value == target else MISSED)

    def info(self, name: str, value: float, unit: str = "") -> None:
        self._add(name, value, unit, "", INFO)

    def skipped(self, name: str, reason: str) -> None:
        self._add(name, None, "", "", SKIPPED, reason)

    def broken(self, name: str, reason: str) -> None:
        """A part that could not produce its figure (a crash, too few endpoints registered, ...)."""
        self._add(name, None, "", "", BROKEN, reason)

    async def measured(self, part: str, unavailable: str | None, measure: Callable[[], Awaitable[None]]) -> int:
        """``finish()`` after ``measure``, where the bench can run: ``unavailable`` (why it cannot,
        e.g. no root) is said and SKIPPED as ``part``; a crash is printed and kept as BROKEN "run"
        beside the figures measured so far."""
        if unavailable:
            print(f"cannot run here: {unavailable}")
            self.skipped(part, unavailable)
            return self.finish()
        try:
            await measure()
        except Exception as exc:  # noqa: BLE001 - a broken bench says so in its verdicts
            traceback.print_exc()
            self.broken("run", f"{type(exc).__name__}: {exc}")
        return self.finish()

    def exit_code(self) -> int:
        verdicts = {f.verdict for f in self.figures}
        if verdicts & {MISSED, BROKEN} or not self.figures:
            return 1
        if SKIPPED in verdicts and in_ci():
            return 3
        return 0

    def finish(self) -> int:
        print(f"--- {self.bench}: verdicts")
        for f in self.figures:
            target = f" (target {f.target})" if f.target else ""
            note = f": {f.note}" if f.note else ""
            shown = "" if f.value is None else f": {f.shown()}"
            print(f"{f.verdict:<8} {f.name}{shown}{target}{note}")
        code = self.exit_code()
        if not self.figures:
            print(f"BROKEN   {self.bench}: no figure was recorded")
        elif code == 3:
            print("SKIPPED parts fail the run: CI is set")
        print(f"{self.bench}: {'PASS' if code == 0 else 'FAIL'} (exit {code})")
        results = os.environ.get("BENCH_RESULTS")
        if results:
            with open(results, "a") as out:
                for f in self.figures:
                    out.write(json.dumps(asdict(f)) + "\n")
        sys.stdout.flush()
        return code
