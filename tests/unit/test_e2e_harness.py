"""With CI set, an e2e test whose prerequisites are missing fails instead of skipping."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import harness
from harness import in_ci, require_real_asterisk, unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("value", "ci"), [("true", True), ("1", True), ("yes", True), ("TRUE", True),
                                           ("", False), ("false", False), ("0", False), ("no", False)])
def test_what_counts_as_ci(monkeypatch: pytest.MonkeyPatch, value: str, ci: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is ci


def test_ci_unset_is_not_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert not in_ci()


def test_under_ci_a_missing_prerequisite_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no sipp"):
        unavailable("no sipp")


def test_outside_ci_it_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no sipp"):
        unavailable("no sipp")


@pytest.mark.parametrize(("euid", "sipp", "why"), [(1000, "/usr/bin/sipp", "root"), (0, None, "SIPp")])
def test_require_real_asterisk_under_ci(monkeypatch: pytest.MonkeyPatch, euid: int, sipp: str | None,
                                        why: str) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(harness.os, "geteuid", lambda: euid)
    monkeypatch.setattr(harness.shutil, "which", lambda name: sipp)
    with pytest.raises(pytest.fail.Exception, match=why):
        require_real_asterisk()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match=why):
        require_real_asterisk()


def test_no_test_or_bench_skips_by_itself() -> None:
    """Every skip goes through harness.unavailable, so CI turns it into a failure."""
    skip = re.compile(r"pytest\.skip\(|mark\.skipif|importorskip\(|mark\.skip\b|unittest\.skip")
    mine = {ROOT / "tests/e2e/harness.py", Path(__file__).resolve()}
    sources = [path for folder in ("tests", "bench") for path in (ROOT / folder).rglob("*.py") if path not in mine]
    found = [f"{path.relative_to(ROOT)}:{n}" for path in sources
             for n, line in enumerate(path.read_text().splitlines(), 1) if skip.search(line)]
    assert found == []
