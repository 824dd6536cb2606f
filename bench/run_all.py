"""Run the benches and print one table of every figure, its target and its verdict.

    .venv/bin/python bench/run_all.py            # every bench (needs root, the rootfs, SIPp)
    .venv/bin/python bench/run_all.py --light    # the ones without Asterisk (every bench_*.py but the HEAVY ones)
    .venv/bin/python bench/run_all.py bench_numbers bench_rating -- --rows 100000

Each bench runs in its own process, one after the other (they would compete for the
cores otherwise), once the machine is quiet (``settle``), and appends its figures to a results file (bench/verdict.py). A bench
that dies without a figure shows as BROKEN with its exit code. Arguments after ``--`` go to
every bench named. Exits 1 when any target is missed or any bench broke, 3 when
something was skipped while CI is set, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from verdict import BROKEN, MISSED, SKIPPED, Figure, in_ci  # noqa: E402

# Every bench/bench_*.py runs; these need root, the Asterisk rootfs and SIPp (and the machine).
HEAVY = ["bench_asterisk_boot", "bench_provisioning", "bench_admission", "bench_calls", "bench_flows",
         "bench_edge"]  # bench_edge: root and the rootfs's Kamailio
LIGHT = sorted({p.stem for p in HERE.glob("bench_*.py")} - set(HEAVY))


# Before each bench the machine must be quiet: the previous one's leftovers (an Asterisk
# shutting down, PostgreSQL's checkpoint and autovacuum) took a third of a core from the
# next bench's first seconds (bench_api right after bench_calls read 0.51-0.74 against
# 0.67-0.69 on its own). Waited for, up to a bound, and printed.
QUIET_IDLE = 0.85
QUIET_WAIT_S = 30.0


def _cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of all cores so far (/proc/stat's first line; iowait counts as idle)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields)


def settle() -> None:
    started = time.monotonic()
    idle = 0.0
    while time.monotonic() - started < QUIET_WAIT_S:
        idle0, total0 = _cpu_times()
        time.sleep(1.0)
        idle1, total1 = _cpu_times()
        idle = (idle1 - idle0) / max(total1 - total0, 1)
        if idle >= QUIET_IDLE:
            break
    print(f"=== machine {idle:.0%} idle after {time.monotonic() - started:.0f} s of waiting", flush=True)


def run(bench: str, extra: list[str], results: Path) -> tuple[int, float]:
    settle()
    started = time.monotonic()
    print(f"=== {bench} {' '.join(extra)}", flush=True)
    proc = subprocess.run([sys.executable, str(HERE / f"{bench}.py"), *extra],
                          env={**os.environ, "BENCH_RESULTS": str(results)}, check=False)
    return proc.returncode, time.monotonic() - started


def table(figures: list[Figure]) -> str:
    rows = [("bench", "figure", "value", "target", "verdict")]
    for f in figures:
        verdict = f.verdict + (f" ({f.note})" if f.note else "")
        rows.append((f.bench, f.name, f.shown(), f.target or "-", verdict))
    widths = [min(max(len(r[i]) for r in rows), 72) for i in range(4)]
    lines = []
    for i, row in enumerate(rows):
        lines.append(" | ".join([*(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)), row[4]]))
        if i == 0:
            lines.append("-+-".join(["-" * w for w in widths] + ["-" * 7]))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benches", nargs="*", help=f"default: all ({', '.join(LIGHT + HEAVY)})")
    parser.add_argument("--light", action="store_true", help=f"only {', '.join(LIGHT)}")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    benches = args.benches or (LIGHT if args.light else LIGHT + HEAVY)
    unknown = [b for b in benches if not (HERE / f"{b}.py").exists()]
    if unknown:
        parser.error(f"no such bench: {', '.join(unknown)}")
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-results-") as tmp:
        for bench in benches:
            results = Path(tmp) / f"{bench}.jsonl"
            code, seconds = run(bench, extra, results)
            found = [Figure(**json.loads(line)) for line in results.read_text().splitlines()] \
                if results.exists() else []
            if not found:
                found = [Figure(bench, "run", None, "", "", BROKEN, f"exit {code} without a figure")]
            elif code not in (0, 1, 3):
                found.append(Figure(bench, "run", None, "", "", BROKEN, f"exit {code}"))
            figures += found
            print(f"=== {bench}: exit {code} after {seconds:.0f} s", flush=True)
    print()
    print(table(figures))
    verdicts = {f.verdict for f in figures}
    if verdicts & {MISSED, BROKEN}:
        return 1
    return 3 if SKIPPED in verdicts and in_ci() else 0


if __name__ == "__main__":
    sys.exit(main())
