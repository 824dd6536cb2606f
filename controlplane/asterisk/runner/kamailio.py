"""Kamailio (the SIP edge, docs/scale.md) in a chroot of the same cached root filesystem as Asterisk.

The runner runs whatever configuration it is given (``files``: name -> text, written to
``<rootfs>/srv/controlplane/kamailio-<instance>/etc``); the project's own configuration is
rendered by ``controlplane.nodes.kamailio_cfg`` from the database. Like Asterisk's local
runner it starts the process under a detached shell (own session, real pid at once, console
output in ``log/console.log``), and it is ready once its JSON-RPC answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from controlplane.asterisk.runner.config_files import INSTANCE_ROOT
from controlplane.asterisk.runner.instance import tail
from controlplane.asterisk.runner.interface import AsteriskError
from controlplane.asterisk.runner.processes import alive, proc_start, send_signal, wait_gone
from controlplane.asterisk.runner.rootfs import CHROOT_ENV, chroot_argv

KAMAILIO = "/usr/sbin/kamailio"
CFG_FILE = "kamailio.cfg"


class KamailioError(AsteriskError):
    """Kamailio could not be started or reached; the message carries the console tail."""


def kamailio_moddir(rootfs: Path) -> str:
    found = sorted(rootfs.glob("usr/lib/*/kamailio/modules"))
    if not found:
        raise KamailioError(f"{rootfs}: no usr/lib/*/kamailio/modules (the root filesystem lacks Kamailio)")
    return "/" + str(found[0].relative_to(rootfs))


def kamailio_dir(instance: str) -> PurePosixPath:
    """The instance's directory as Kamailio sees it (inside the chroot)."""
    return INSTANCE_ROOT / f"kamailio-{instance}"


def rpc_call(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:
    """One JSON-RPC 2.0 call to Kamailio's jsonrpcs over HTTP; its ``result``."""
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params or [], "id": 1}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (our own edge)
        answer = json.loads(response.read() or b"{}")
    if "error" in answer:
        raise KamailioError(f"kamailio rpc {method}: {answer['error']}")
    return answer.get("result")


@dataclass
class KamailioRunner:
    rootfs: Path
    instance: str
    rpc_url: str
    boot_timeout: float = 20.0
    pid: int | None = None

    @property
    def inner_dir(self) -> PurePosixPath:
        return kamailio_dir(self.instance)

    @property
    def instance_dir(self) -> Path:
        return self.rootfs / str(self.inner_dir).lstrip("/")

    @property
    def log_dir(self) -> Path:
        return self.instance_dir / "log"

    def write(self, files: Mapping[str, str]) -> None:
        etc = self.instance_dir / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            if "/" in name or name.startswith("."):
                raise KamailioError(f"file name {name!r}: a plain name is required")
            tmp = etc / f".{name}.tmp"
            tmp.write_text(text)
            tmp.replace(etc / name)

    def check(self) -> None:
        """``kamailio -c``: the configuration parses and every module loads."""
        done = subprocess.run(chroot_argv(self.rootfs, KAMAILIO, "-c", "-f", self._cfg()),
                              capture_output=True, text=True, timeout=30, env=dict(CHROOT_ENV))
        if done.returncode != 0:
            raise KamailioError(f"kamailio -c failed:\n{(done.stdout + done.stderr)[-3000:]}")

    def up(self, files: Mapping[str, str]) -> int:
        self.write(files)
        for sub in ("run", "log"):
            (self.instance_dir / sub).mkdir(parents=True, exist_ok=True)
        self.instance_dir.chmod(0o700)  # the configuration carries the database password
        argv = chroot_argv(self.rootfs, KAMAILIO, "-f", self._cfg(), "-DD", "-E",
                           "-P", str(self.inner_dir / "run" / "kamailio.pid"),
                           "-Y", str(self.inner_dir / "run"))
        script = 'exec </dev/null; "$@" >>"$CP_CONSOLE_LOG" 2>&1 & echo $!'
        env = {**CHROOT_ENV, "HOME": "/root", "CP_CONSOLE_LOG": str(self.log_dir / "console.log")}
        done = subprocess.run(["/bin/sh", "-c", script, "sh", *argv], env=env, capture_output=True,
                              text=True, start_new_session=True, timeout=10)
        try:
            self.pid = int(done.stdout.strip())
        except ValueError:
            raise KamailioError(f"could not start Kamailio: {done.stderr.strip()}") from None
        (self.instance_dir / "run" / "runner.json").write_text(
            json.dumps({"pid": self.pid, "start": proc_start(self.pid)}) + "\n")
        self._wait_ready()
        return self.pid

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.boot_timeout
        assert self.pid is not None
        while True:
            if not alive(self.pid):
                raise KamailioError(f"Kamailio exited during start:\n{tail(self.log_dir / 'console.log')}")
            try:
                rpc_call(self.rpc_url, "core.version", timeout=1.0)
                return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.down()
                raise KamailioError(f"Kamailio's RPC not answering within {self.boot_timeout:.0f} s:\n"
                                    + tail(self.log_dir / "console.log"))
            time.sleep(0.1)

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        return rpc_call(self.rpc_url, method, params)

    def down(self) -> None:
        """SIGTERM (Kamailio's main process ends its children), SIGKILL after a while."""
        if self.pid is None or not alive(self.pid):
            return
        send_signal(self.pid, signal.SIGTERM)
        if not wait_gone(self.pid, 5.0):
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the whole process group: the main process and every child it forked
        (started in a session of its own, the group is Kamailio's alone)."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(self.pid), signal.SIGKILL)
        send_signal(self.pid, signal.SIGKILL)
        wait_gone(self.pid, 5.0)

    def console(self, lines: int = 60) -> str:
        return tail(self.log_dir / "console.log", lines)

    def _cfg(self) -> str:
        return str(self.inner_dir / "etc" / CFG_FILE)
