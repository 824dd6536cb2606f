"""The container runner: Asterisk from ``asterisk/Dockerfile``, host networking, driven by the docker CLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from controlplane.asterisk.runner.base import RunnerBase
from controlplane.asterisk.runner.config_files import (
    INSTANCE_ROOT, check_extra_name, recipe_dir, render, template_values, write_config,
)
from controlplane.asterisk.runner.instance import (
    ASTERISK, STOP_TIMEOUT, claim_instance, log_tails, rotate_console,
)
from controlplane.asterisk.runner.interface import AsteriskError, AsteriskStatus
from controlplane.config import Config

IMAGE = "controlplane-asterisk:22"
_IMAGE_MODDIR = "/usr/lib/x86_64-linux-gnu/asterisk/modules"


class ContainerRunner(RunnerBase):
    """Asterisk in a container (``asterisk/Dockerfile``), host networking, driven by the docker CLI.

    The instance directory is bind-mounted from ``<data_dir>/asterisk/instances/<instance>``
    so logs and the daemon-written dialplan are on the host; the entrypoint renders
    the same templates from ``CONTROLPLANE_ASTERISK__*`` variables.
    """

    mode = "container"

    def __init__(self, cfg: Config, *, extra_files: Mapping[str, str] | None = None) -> None:
        super().__init__(cfg)
        a = cfg.asterisk
        self.name = f"controlplane-asterisk-{a.instance}"
        self.image = os.environ.get("CONTROLPLANE_ASTERISK_IMAGE", IMAGE)
        self.inner_dir = INSTANCE_ROOT / a.instance
        self.instance_dir = cfg.data_path / "asterisk" / "instances" / a.instance
        self.etc_dir: Path | None = self.instance_dir / "etc"
        self.log_dir: Path | None = self.instance_dir / "log"
        self.inner_conf = str(self.inner_dir / "etc" / "asterisk.conf")
        self.extra_files = dict(extra_files or {})

    def up(self) -> AsteriskStatus:
        deadline = time.monotonic() + self.cfg.asterisk.boot_timeout
        started = not self._running()
        if started:
            self._docker("rm", "-f", self.name, check=False)
            self._ensure_image()
            claim_instance(self.cfg, self.mode, self.instance_dir)
            self._write_extras()
            rotate_console(self.instance_dir / "log")
            self._run()
        try:
            self._wait_booted(deadline)
        except AsteriskError:
            if started:  # the error carries the logs; leave no half-booted container behind
                self._docker("rm", "-f", self.name, check=False)
            raise
        return self.status()

    def down(self) -> None:
        if self._running():
            with contextlib.suppress(AsteriskError, subprocess.TimeoutExpired):
                self._rx("core stop now", timeout=STOP_TIMEOUT)
            self._docker("stop", "-t", str(int(STOP_TIMEOUT)), self.name, check=False)
        self._docker("rm", "-f", self.name, check=False)

    def status(self) -> AsteriskStatus:
        state = self._inspect()
        running = bool(state and state.get("Running"))
        pid = int(state["Pid"]) if running and state and state.get("Pid") else None
        uptime = _since(state.get("StartedAt")) if running and state else None
        ari = running and self._probe_ari(timeout=1.0)[0] == 200
        return self._status(running, pid, ari, uptime, f", container {self.name}, logs in {self.log_dir}")

    def kill(self) -> None:
        if self._running():
            self._docker("kill", "-s", "KILL", self.name, check=False)
            deadline = time.monotonic() + 10.0
            while self._running() and time.monotonic() < deadline:
                time.sleep(0.1)

    # -- helpers

    def _write_extras(self) -> None:
        """The entrypoint renders the base templates; extras are rendered here."""
        values = template_values(self.cfg, self.credentials(), moddir=_IMAGE_MODDIR)
        for name in self.extra_files:
            check_extra_name(name)
        extras = {name: render(text, values, name=name) for name, text in self.extra_files.items()}
        write_config(self.instance_dir / "etc", extras, set(extras))

    def _run(self) -> None:
        a, creds = self.cfg.asterisk, self.credentials()
        env = {
            "CONTROLPLANE_ASTERISK__INSTANCE": a.instance,
            "CONTROLPLANE_ASTERISK__SIP_PORT": str(a.sip_port),
            "CONTROLPLANE_ASTERISK__HTTP_PORT": str(a.http_port),
            "CONTROLPLANE_ASTERISK__AMI_PORT": str(a.ami_port),
            "CONTROLPLANE_ASTERISK__ARI_USER": creds.ari_user,
            "CONTROLPLANE_ASTERISK__ARI_PASSWORD": creds.ari_password,
            "CONTROLPLANE_ASTERISK__AMI_USER": creds.ami_user,
            "CONTROLPLANE_ASTERISK__AMI_PASSWORD": creds.ami_password,
            "CONTROLPLANE_ASTERISK__APP": a.app,
        }
        args = ["run", "-d", "--name", self.name, "--network", "host", "--init",
                "--label", "controlplane.asterisk.instance=" + a.instance,
                "-v", f"{self.instance_dir}:{self.inner_dir}"]
        for key in env:
            args += ["-e", key]  # values via the environment, not the process list
        self._docker(*args, self.image, env=env)

    def _docker(self, *args: str, check: bool = True, env: Mapping[str, str] | None = None,
                timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        if shutil.which("docker") is None:
            raise AsteriskError("the container runner needs the docker CLI on PATH")
        full_env = {**os.environ, **(env or {})}
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                                env=full_env)
        if check and result.returncode != 0:
            raise AsteriskError(f"docker {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def _inspect(self) -> dict[str, object] | None:
        result = self._docker("inspect", "--format", "{{json .State}}", self.name, check=False)
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)

    def _running(self) -> bool:
        state = self._inspect()
        return bool(state and state.get("Running"))

    def _ensure_image(self) -> None:
        if self._docker("image", "inspect", self.image, check=False).returncode == 0:
            return
        recipe = recipe_dir()
        self._docker("build", "-t", self.image, "-f", str(recipe / "Dockerfile"), str(recipe), timeout=1800)

    def _rx(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return self._docker("exec", self.name, ASTERISK, "-C", self.inner_conf, "-rx", command,
                            check=False, timeout=timeout)

    def _wait_booted(self, deadline: float) -> None:
        a = self.cfg.asterisk
        booted = False
        while True:
            if not self._running():
                logs = self._docker("logs", "--tail", "30", self.name, check=False)
                raise AsteriskError(f"Asterisk container {self.name} exited during boot\n"
                                    f"{logs.stdout}{logs.stderr}\n" + log_tails(self.instance_dir / "log"))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AsteriskError(f"Asterisk container {self.name} not ready within "
                                    f"{a.boot_timeout:.0f} s\n"
                                    + log_tails(self.instance_dir / "log"))
            if not booted:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    result = self._rx("core waitfullybooted", timeout=remaining)
                    booted = result.returncode == 0 and "fully booted" in result.stdout
            if booted and self._probe_ari(timeout=2.0)[0] == 200:
                return
            time.sleep(0.1)


def _since(started_at: object) -> float | None:
    """Seconds since docker's ``State.StartedAt`` (nanosecond RFC 3339)."""
    if not isinstance(started_at, str):
        return None
    text = re.sub(r"(\.\d{6})\d*", r"\1", started_at).replace("Z", "+00:00")
    try:
        return max(0.0, (datetime.now(timezone.utc) - datetime.fromisoformat(text)).total_seconds())
    except ValueError:
        return None
