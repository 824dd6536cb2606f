"""The container runner: Asterisk from ``asterisk/Dockerfile``, host networking, driven by the
docker CLI, or podman's where docker is absent (podman reads ``$CONTAINERS_CONF``; the
project's ``compose/containers.conf`` suits hosts where crun fails)."""

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
from typing import Any

from controlplane.asterisk.runner.base import RunnerBase
from controlplane.asterisk.runner.config_files import (
    INSTANCE_ROOT, RenderedConfig, base_templates, recipe_dir, render_config, template_values,
)
from controlplane.asterisk.runner.instance import (
    ASTERISK, STOP_TIMEOUT, claim_instance, log_tails, rotate_console,
)
from controlplane.asterisk.runner.interface import AsteriskError, AsteriskStatus
from controlplane.asterisk.runner.probes import docker_available
from controlplane.config import Config

IMAGE = "controlplane-asterisk:22"


class ContainerRunner(RunnerBase):
    """Asterisk in a container (``asterisk/Dockerfile``), host networking, driven by docker or podman.

    The instance directory is bind-mounted from ``<data_dir>/asterisk/instances/<instance>``:
    the whole configuration is written there before the container starts (the image
    renders nothing; its entrypoint waits for ``etc/asterisk.conf``), and the logs
    and the daemon-written dialplan stay on the host.
    """

    mode = "container"

    def __init__(self, cfg: Config, *, extra_files: Mapping[str, str] | None = None,
                 rendered: RenderedConfig | None = None) -> None:
        super().__init__(cfg)
        self.rendered = rendered
        self._cli_name: str | None = None
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
            self._docker("rm", "-f", "-v", self.name, check=False)
            self._ensure_image()
            claim_instance(self.cfg, self.mode, self.instance_dir)
            self._rendered().write(self.instance_dir / "etc")
            rotate_console(self.instance_dir / "log")
            self._run()
        try:
            self._wait_booted(deadline)
        except AsteriskError:
            if started:  # the error carries the logs; leave no half-booted container behind
                self._docker("rm", "-f", "-v", self.name, check=False)
            raise
        return self.status()

    def down(self) -> None:
        if self._running():
            with contextlib.suppress(AsteriskError, subprocess.TimeoutExpired):
                self._rx("core stop now", timeout=STOP_TIMEOUT)
            self._docker("stop", "-t", str(int(STOP_TIMEOUT)), self.name, check=False)
        self._docker("rm", "-f", "-v", self.name, check=False)

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

    def _rendered(self) -> RenderedConfig:
        """The whole configuration given (the daemon's), else the base templates plus extras."""
        if self.rendered is not None:
            return self.rendered
        values = template_values(self.cfg, self.credentials(), moddir=self.moddir())
        files = render_config(base_templates(), values, self.extra_files)
        return RenderedConfig(files, frozenset(self.extra_files))

    def _run(self) -> None:
        a = self.cfg.asterisk
        args = ["run", "-d", "--name", self.name, "--network", "host", "--init",
                "--label", "controlplane.asterisk.instance=" + a.instance,
                "-e", "CONTROLPLANE_ASTERISK__INSTANCE=" + a.instance,
                "-v", f"{self.instance_dir}:{self.inner_dir}"]
        self._docker(*args, self.image)

    def _docker(self, *args: str, check: bool = True, env: Mapping[str, str] | None = None,
                timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        cli = self._cli()
        full_env = {**os.environ, **(env or {})}
        result = subprocess.run([cli, *args], capture_output=True, text=True, timeout=timeout,
                                env=full_env)
        if check and result.returncode != 0:
            raise AsteriskError(f"{cli} {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def _cli(self) -> str:
        """docker when its engine answers, else podman (same commands, same output), chosen once."""
        if self._cli_name is None:
            if shutil.which("podman") and not docker_available():
                self._cli_name = "podman"
            elif shutil.which("docker"):
                self._cli_name = "docker"
            else:
                raise AsteriskError("the container runner needs the docker or podman CLI on PATH")
        return self._cli_name

    def _inspect(self) -> dict[str, Any] | None:
        """The container's ``State`` object as the engine prints it (Running, Pid, StartedAt...)."""
        result = self._docker("inspect", "--format", "{{json .State}}", self.name, check=False)
        if result.returncode != 0:
            return None
        state: dict[str, Any] = json.loads(result.stdout)
        return state

    def _running(self) -> bool:
        state = self._inspect()
        return bool(state and state.get("Running"))

    def _ensure_image(self) -> None:
        if self._docker("image", "inspect", self.image, check=False).returncode == 0:
            return
        recipe = recipe_dir()
        # A host without a registry names a local base (compose/build-base-images.sh).
        base = os.environ.get("ASTERISK_BASE_IMAGE")
        build_args = ["--build-arg", f"ASTERISK_BASE_IMAGE={base}"] if base else []
        self._docker("build", "-t", self.image, *build_args, "-f", str(recipe / "Dockerfile"), str(recipe),
                     timeout=1800)

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
