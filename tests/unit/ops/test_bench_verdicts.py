"""The benches' verdicts (bench/verdict.py): what exits non-zero, and what run_all reads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from verdict import Verdicts  # noqa: E402


def test_a_missed_target_or_a_broken_part_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    met = Verdicts("b")
    assert met.below("p99", 9.9, 50, "ms") and met.at_least("ratio", 0.95, 0.95)
    assert met.exit_code() == 0
    missed = Verdicts("b")
    assert not missed.at_most("p99", 2.16, 1.0, "ms")
    assert missed.exit_code() == 1
    broken = Verdicts("b")
    broken.info("rate", 100.0)
    broken.broken("register", "199/200 endpoints registered")
    assert broken.exit_code() == 1
    assert Verdicts("nothing measured").exit_code() == 1


def test_a_skip_says_so_and_fails_only_under_ci(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    skipped = Verdicts("bench_admission")
    skipped.info("part 1", 0.17, "ms")
    skipped.skipped("part 2", "needs root (chroot)")
    monkeypatch.delenv("CI", raising=False)
    assert skipped.finish() == 0
    assert "SKIPPED  part 2: needs root (chroot)" in capsys.readouterr().out
    monkeypatch.setenv("CI", "true")
    assert skipped.finish() == 3


def test_figures_go_to_the_results_file_for_run_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv("BENCH_RESULTS", str(results))
    verdicts = Verdicts("bench_numbers")
    verdicts.below("search p99", 3.1, 50, "ms")
    verdicts.finish()
    (line,) = results.read_text().splitlines()
    assert json.loads(line) == {"bench": "bench_numbers", "name": "search p99", "value": 3.1, "unit": "ms",
                                "target": "< 50 ms", "verdict": "MET", "note": ""}
