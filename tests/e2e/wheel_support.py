"""Build the project's wheel and install it non-editable into a fresh virtualenv (shared by
tests/integration/test_wheel.py and tests/e2e/test_wheel_daemon.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_SKIP = shutil.ignore_patterns(".venv", "var", ".git", "__pycache__", "build", "*.egg-info", ".pytest_cache",
                               "tests", "bench")


def build_wheel(work: Path) -> Path:
    """``pip wheel`` of a copy of the tree (an in-tree build would leave build/ behind)."""
    source = work / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=_SKIP)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"),
                    str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = (work / "dist").glob("controlplane-*.whl")
    return wheel


def fresh_venv(work: Path, wheel: Path) -> Path:
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    # Dependencies from the project's venv: a plain path entry, so its editable finder
    # (which maps `controlplane` to the source tree) is not loaded.
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv
