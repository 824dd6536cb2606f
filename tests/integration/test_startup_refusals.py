"""`controlplane serve` refuses, with one line and before PostgreSQL or Asterisk start,
a taken HTTP port, production without an emergency trunk, and out-of-range values."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CONTROLPLANE = Path(sys.executable).parent / "controlplane"


def serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    return subprocess.run([str(CONTROLPLANE), "serve"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**clean, "CONTROLPLANE_DATA_DIR": str(tmp_path / "var"), **env})


def test_a_taken_http_port_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = serve(tmp_path, CONTROLPLANE_HTTP__PORT=str(port))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"controlplane: http.port: 127.0.0.1:{port} is already in use; stop what holds it or pick another http.port")
    assert not (tmp_path / "var" / "postgres").exists()


def test_production_without_an_emergency_trunk_is_refused(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = serve(tmp_path, CONTROLPLANE_MODE="production", CONTROLPLANE_HTTP__PORT=str(port))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
        "controlplane: emergency.trunk_host: no emergency trunk")
    assert not (tmp_path / "var" / "postgres").exists()


@pytest.mark.parametrize(("variable", "value", "key"), [
    ("CONTROLPLANE_WEBHOOKS__TIMEOUT", "-5", "webhooks.timeout: -5.0"),
    ("CONTROLPLANE_WEBHOOKS__MAX_CONCURRENCY", "0", "webhooks.max_concurrency: 0"),
])
def test_out_of_range_values_are_one_line(tmp_path: Path, variable: str, value: str, key: str) -> None:
    done = serve(tmp_path, **{variable: value})
    assert done.returncode == 2
    assert done.stderr.strip() == f"controlplane: invalid configuration: {key} must be greater than 0"


def test_a_taken_metrics_port_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as holder, socket.socket() as probe:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
        probe.close()
        done = serve(tmp_path, CONTROLPLANE_METRICS__PORT=str(port), CONTROLPLANE_HTTP__PORT=str(free))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"controlplane: metrics.port: 127.0.0.1:{port} is already in use; stop what holds it or pick another "
        "metrics.port")
    assert not (tmp_path / "var" / "postgres").exists()
