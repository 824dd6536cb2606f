"""The daemon runs from the built wheel: installed non-editable into a fresh virtualenv,
``controlplane serve`` on embedded defaults (its own PostgreSQL, the local Asterisk
from the templates the wheel carries) becomes ready, and stops both on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml
from harness import free_port, free_udp_tcp_port, require_real_asterisk, rtp_range
from wheel_support import build_wheel, fresh_venv

from controlplane.asterisk.runner import LocalRunner
from controlplane.config import load_config
from controlplane.db.embedded import EmbeddedPostgres


def _readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_the_daemon_starts_from_the_wheel_until_ready(tmp_path: Path) -> None:
    require_real_asterisk()
    venv = fresh_venv(tmp_path, build_wheel(tmp_path))
    rtp_start, rtp_end = rtp_range()
    port = free_port()
    path = tmp_path / "controlplane.yaml"
    path.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "var"), "http": {"port": port},
        "asterisk": {"run": "local", "instance": f"wheel{os.getpid()}", "sip_port": free_udp_tcp_port(),
                     "http_port": free_port(), "ami_port": free_port(), "rtp_start": rtp_start,
                     "rtp_end": rtp_end, "boot_timeout": 60},
        "limits": {"agi_port": free_port()}}))
    config = load_config(path, environ={})
    log = (tmp_path / "daemon.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_ASTERISK_RECIPE")}
    daemon = subprocess.Popen([str(venv / "bin" / "controlplane"), "-c", str(path), "serve"], cwd=tmp_path,
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    runner = LocalRunner(config)
    try:
        deadline = time.monotonic() + 90
        while _readyz(port) != 200:
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()[-3000:]
            time.sleep(0.3)
        assert runner.status().running
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, (tmp_path / "daemon.log").read_text()[-3000:]
        assert not runner.status().running
        assert EmbeddedPostgres(tmp_path / "var" / "postgres").running_port() is None
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        runner.down()
        EmbeddedPostgres(tmp_path / "var" / "postgres").stop()
        shutil.rmtree(runner.instance_dir, ignore_errors=True)

