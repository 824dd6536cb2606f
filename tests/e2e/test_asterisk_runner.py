"""The Asterisk runner against a real Asterisk: boot, CLI, ARI auth, a SIPp call,
crash (SIGKILL) and restart, external mode, clean stop.

One instance for the module (``t<pid>``, free ports, a throwaway data dir), so it
runs beside a developer's Asterisk and other test runs. The run mode follows
``CONTROLPLANE_TEST_ASTERISK_RUN`` (default ``auto``: container if a Docker engine
answers, else the local root filesystem, built on first use).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.asterisk.credentials import resolve_credentials
from controlplane.asterisk.runner import (
    AsteriskError, AsteriskRunner, LocalRunner, probe_ari, recipe_dir, render_config, runner_for,
    template_values,
)
from controlplane.config import AsteriskConfig, AsteriskRunMode, Config
from harness import free_media_port, free_port, free_udp_tcp_port, unavailable

pytestmark = [pytest.mark.e2e]

# Test-only PJSIP objects: an unauthenticated endpoint for calls from 127.0.0.1
# (SIPp), landing in the base config's answer-wait-hangup context.
SIPP_ENDPOINT = """\
[sipp]
type = endpoint
context = controlplane-test
disallow = all
allow = ulaw
[sipp]
type = identify
endpoint = sipp
match = 127.0.0.1
"""
TENANTS_MARK = "; written by test_asterisk_runner: must survive restarts\n"


def _make_config(data_dir: Path, run: str = "auto", **asterisk: object) -> Config:
    ports = {"sip_port": free_udp_tcp_port(), "http_port": free_port(), "ami_port": free_port()}
    return Config(data_dir=str(data_dir), asterisk=AsteriskConfig(
        run=AsteriskRunMode(run), instance=f"t{os.getpid()}", boot_timeout=60.0,
        **{**ports, **asterisk}))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    run = os.environ.get("CONTROLPLANE_TEST_ASTERISK_RUN", "auto")
    return _make_config(tmp_path_factory.mktemp("asterisk-runner"), run)


@pytest.fixture(scope="module")
def runner(cfg: Config) -> Iterator[AsteriskRunner]:
    chosen = runner_for(cfg, extra_files={"pjsip_extra.conf": SIPP_ENDPOINT})
    if chosen.mode == "local" and os.geteuid() != 0:
        unavailable("the local Asterisk runner needs root (chroot)")
    try:
        yield chosen
    finally:
        chosen.down()
        if isinstance(chosen, LocalRunner):  # the instance directory lives in the shared rootfs
            shutil.rmtree(chosen.instance_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def booted(runner: AsteriskRunner, pytestconfig: pytest.Config) -> dict[str, float]:
    """Boots once for the module; records boot times for the report."""
    started = time.monotonic()
    status = runner.up()
    times = {"first boot": time.monotonic() - started}
    assert status.running and status.ari, status.detail
    _report(pytestconfig, f"Asterisk runner ({runner.mode}): first boot to ARI answering "
                          f"{times['first boot']:.2f} s")
    return times


def _report(pytestconfig: pytest.Config, line: str) -> None:
    """Print past pytest's capture: boot times are worth seeing on every run."""
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.ensure_newline()
        reporter.write_line(line)


# --------------------------------------------------------------------------- no Asterisk needed

def test_templates_render_without_leftover_placeholders(tmp_path: Path) -> None:
    cfg = _make_config(tmp_path)
    values = template_values(cfg, resolve_credentials(cfg), moddir="/usr/lib/x/asterisk/modules")
    files = render_config(recipe_dir() / "etc", values, {"pjsip_extra.conf": SIPP_ENDPOINT})
    assert {"asterisk.conf", "modules.conf", "pjsip.conf", "extensions.conf", "extensions_tenants.conf",
            "pjsip_extra.conf"} <= files.keys()
    for name, text in files.items():
        assert "{{" not in text, name
    assert f"bindport = {cfg.asterisk.http_port}" in files["http.conf"]
    assert f"bind = 127.0.0.1:{cfg.asterisk.sip_port}" in files["pjsip.conf"]
    assert "${EXTEN}" in files["extensions.conf"]  # Asterisk's own variables are left alone
    with pytest.raises(AsteriskError, match="unknown placeholder"):
        render_config(recipe_dir() / "etc", values, {"x_extra.conf": "{{nope}}"})


def test_credentials_generated_once_private_and_config_wins(tmp_path: Path) -> None:
    cfg = _make_config(tmp_path)
    first = resolve_credentials(cfg)
    path = cfg.data_path / "secrets" / "ari_password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_credentials(cfg) == first
    assert first.ari_password != first.ami_password and len(first.ari_password) >= 24
    assert first.ari_password not in repr(first)
    pinned = _make_config(tmp_path, ari_password="pinned-secret")
    both = resolve_credentials(pinned)
    assert both.ari_password == "pinned-secret" and both.ami_password == first.ami_password
    assert path.read_text().strip() == first.ari_password


def test_unsafe_credentials_are_refused(tmp_path: Path) -> None:
    cfg = _make_config(tmp_path, ami_password="abc;def")
    with pytest.raises(AsteriskError, match="ami_password"):
        template_values(cfg, resolve_credentials(cfg), moddir="/m")


# --------------------------------------------------------------------------- real Asterisk

def test_up_reports_running(runner: AsteriskRunner, booted: dict[str, float], cfg: Config) -> None:
    status = runner.status()
    assert status.running and status.ari, status.detail
    assert status.mode == runner.mode and status.instance == cfg.asterisk.instance
    assert (status.sip_port, status.http_port, status.ami_port) == (
        cfg.asterisk.sip_port, cfg.asterisk.http_port, cfg.asterisk.ami_port)
    assert status.pid is not None and status.uptime is not None and status.uptime >= 0
    assert runner.log_dir is not None and (runner.log_dir / "messages.log").exists()


def test_up_is_idempotent(runner: AsteriskRunner, booted: dict[str, float]) -> None:
    before = runner.status().pid
    started = time.monotonic()
    again = runner.up()
    assert again.pid == before and again.running
    assert time.monotonic() - started < 5


def test_cli_version(runner: AsteriskRunner, booted: dict[str, float]) -> None:
    assert runner.cli("core show version").startswith("Asterisk ")


def test_pjsip_running(runner: AsteriskRunner, booted: dict[str, float]) -> None:
    shown = runner.cli("module show like res_pjsip.so").splitlines()
    line = next(line for line in shown if line.startswith("res_pjsip.so"))
    assert "Running" in line


def test_every_listed_module_is_running(runner: AsteriskRunner, booted: dict[str, float]) -> None:
    wanted = re.findall(r"^load\s*=\s*(\S+\.so)", (recipe_dir() / "etc" / "modules.conf").read_text(), re.M)
    assert len(wanted) > 50
    shown = runner.cli("module show")
    running = {m.group(1) for m in re.finditer(r"^(\S+\.so)\s.*\sRunning\s", shown, re.M)}
    assert sorted(set(wanted) - running) == []


def test_base_dialplan_loaded(runner: AsteriskRunner, booted: dict[str, float], cfg: Config) -> None:
    assert "Stasis(${CONTROLPLANE_APP},${EXTEN})" in runner.cli("dialplan show controlplane-stasis")
    assert "Wait(1)" in runner.cli("dialplan show controlplane-test")
    assert f"CONTROLPLANE_APP={cfg.asterisk.app}" in runner.cli("dialplan show globals")


def test_ari_requires_credentials(runner: AsteriskRunner, booted: dict[str, float], cfg: Config) -> None:
    creds = resolve_credentials(cfg)
    host, port = cfg.asterisk.host, cfg.asterisk.http_port
    code, body = probe_ari(host, port, creds.ari_user, creds.ari_password)
    assert code == 200 and "system" in json.loads(body)
    assert probe_ari(host, port, None, None)[0] == 401
    assert probe_ari(host, port, creds.ari_user, "wrong")[0] == 401


def test_sipp_call_completes(runner: AsteriskRunner, booted: dict[str, float], cfg: Config,
                             tmp_path: Path) -> None:
    if shutil.which("sipp") is None:
        unavailable("SIPp (Debian: sip-tester) not installed")
    sipp = subprocess.run(
        ["sipp", "-sn", "uac", "-s", "1000", f"127.0.0.1:{cfg.asterisk.sip_port}", "-i", "127.0.0.1",
         "-p", str(free_port(socket.SOCK_DGRAM)), "-mp", str(free_media_port()),
         "-m", "1", "-r", "1", "-timeout", "15s", "-timeout_error", "-nostdin"],
        capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert sipp.returncode == 0, sipp.stdout[-2000:] + sipp.stderr[-2000:]
    assert re.search(r"^\s*1 calls? processed", runner.cli("core show channels"), re.M)


def test_kill_then_up_again(runner: AsteriskRunner, booted: dict[str, float],
                            pytestconfig: pytest.Config) -> None:
    assert runner.etc_dir is not None
    tenants = runner.etc_dir / "extensions_tenants.conf"
    tenants.write_text(TENANTS_MARK)
    old = runner.status().pid
    runner.kill()
    after = runner.status()
    assert not after.running and after.pid is None and not after.ari, after.detail
    with pytest.raises(AsteriskError):
        runner.cli("core show version")
    started = time.monotonic()
    status = runner.up()  # the crashed instance's pid file and control socket must not block this
    booted["boot after kill"] = time.monotonic() - started
    _report(pytestconfig,
            f"Asterisk runner ({runner.mode}): boot after SIGKILL {booted['boot after kill']:.2f} s")
    assert status.running and status.ari and status.pid != old
    assert tenants.read_text() == TENANTS_MARK  # the daemon's file is never overwritten
    assert runner.cli("core show version").startswith("Asterisk ")


def test_external_mode_sees_the_instance(booted: dict[str, float], cfg: Config) -> None:
    external = runner_for(Config(data_dir=cfg.data_dir, asterisk=AsteriskConfig(
        **{**{f: getattr(cfg.asterisk, f) for f in cfg.asterisk.__struct_fields__},
           "run": AsteriskRunMode.EXTERNAL})))
    assert external.mode == "external" and external.log_dir is None
    assert external.up().running
    assert external.status().ari
    assert external.cli("core show version").startswith("Asterisk ")  # through AMI
    external.down()  # not ours: a no-op
    assert external.status().running
    with pytest.raises(AsteriskError):
        external.kill()


def test_down_stops_everything(runner: AsteriskRunner, booted: dict[str, float], cfg: Config) -> None:
    runner.down()
    status = runner.status()
    assert not status.running and status.pid is None, status.detail
    runner.down()  # idempotent
    if isinstance(runner, LocalRunner):
        leftovers = subprocess.run(["pgrep", "-f", runner.inner_conf], capture_output=True, text=True)
        assert leftovers.stdout.strip() == ""
    assert probe_ari(cfg.asterisk.host, cfg.asterisk.http_port, None, None, timeout=1.0)[0] is None
