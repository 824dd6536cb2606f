"""The local runner: Asterisk in a chroot of the cached Debian root filesystem.

Each instance owns ``<rootfs>/srv/controlplane/<instance>/`` (``etc run log spool db``),
so a developer's daemon and test runs share one root filesystem on different ports.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from controlplane.asterisk.runner.base import RunnerBase
from controlplane.asterisk.runner.config_files import (
    INSTANCE_ROOT, RenderedConfig, base_templates, render_config, template_values,
)
from controlplane.asterisk.runner.instance import (
    ASTERISK, STOP_TIMEOUT, claim_instance, log_tails, rotate_console,
)
from controlplane.asterisk.runner.interface import AsteriskError, AsteriskStatus
from controlplane.asterisk.runner.processes import alive, proc_start, proc_uptime, send_signal, wait_gone
from controlplane.asterisk.runner.rootfs import (
    CHROOT_ENV, chroot_argv, default_rootfs, ensure_hosts, ensure_rootfs, moddir,
)
from controlplane.config import Config


class LocalRunner(RunnerBase):
    """Asterisk in a chroot of the cached Debian root filesystem.

    Started in the foreground (``-f``) under a detached shell, not daemonised:
    we get the real pid at once (no pid-file race), and whatever Asterisk prints
    before its logger is up (bad config, missing libraries) lands in
    ``log/console.log`` instead of vanishing with a daemon's closed stdout. The
    shell exits immediately, so Asterisk belongs to no caller (it survives the
    CLI that started it and is never left as our zombie), and it runs in its own
    session, so a Ctrl-C in the terminal does not kill it.
    """

    mode = "local"

    def __init__(self, cfg: Config, *, extra_files: Mapping[str, str] | None = None,
                 rootfs: Path | None = None, template_dir: Path | None = None,
                 rendered: RenderedConfig | None = None, write_config: bool = True) -> None:
        super().__init__(cfg)
        self.template_dir = template_dir
        self.rendered = rendered
        # False: boot from an instance directory someone already wrote (external mode's config_dir).
        self.write_config = write_config
        a = cfg.asterisk
        self.rootfs = Path(rootfs or a.rootfs or default_rootfs()).expanduser().resolve()
        self.inner_dir = INSTANCE_ROOT / a.instance           # path inside the chroot
        self.instance_dir = self.rootfs / str(self.inner_dir).lstrip("/")
        self.etc_dir: Path | None = self.instance_dir / "etc"
        self.log_dir: Path | None = self.instance_dir / "log"
        self.run_dir = self.instance_dir / "run"
        self.inner_conf = str(self.inner_dir / "etc" / "asterisk.conf")
        self.extra_files = dict(extra_files or {})

    # -- public API

    def moddir(self) -> str:
        self._require_root()
        ensure_rootfs(self.rootfs, self.cfg.data_path / "asterisk" / "build-rootfs.log")
        return moddir(self.rootfs)

    def up(self) -> AsteriskStatus:
        self._require_root()
        ensure_rootfs(self.rootfs, self.cfg.data_path / "asterisk" / "build-rootfs.log")
        deadline = time.monotonic() + self.cfg.asterisk.boot_timeout
        with self._locked():
            pid = self._pid()
            spawned = pid is None
            if pid is None:
                self._prepare()
                pid = self._spawn()
            try:
                self._wait_booted(pid, deadline)
            except AsteriskError:
                if spawned:  # a half-booted Asterisk we started is no use to anyone: stop it
                    self._stop(pid)
                raise
        return self.status()

    def down(self) -> None:
        if not self.instance_dir.exists():
            return
        with self._locked():
            pid = self._pid()
            if pid is not None:
                self._stop(pid)
            self._clear_stale()

    def status(self) -> AsteriskStatus:
        pid = self._pid()
        running = pid is not None
        uptime = proc_uptime(pid) if pid else None
        ari = running and self._probe_ari(timeout=1.0)[0] == 200
        return self._status(running, pid, ari, uptime, f", logs in {self.log_dir}")

    def kill(self) -> None:
        pid = self._pid()
        if pid is not None:
            send_signal(pid, signal.SIGKILL)
            wait_gone(pid, 5.0)
        # Leave the pid file and control socket behind, as a real crash would.

    # -- start

    def _require_root(self) -> None:
        if os.geteuid() != 0:
            raise AsteriskError("the local Asterisk runner needs root (it uses chroot); "
                                "run as root or set asterisk.run to container/external")

    def _prepare(self) -> None:
        claim_instance(self.cfg, self.mode, self.instance_dir)
        if self.write_config:
            self._rendered().write(self.instance_dir / "etc")
        ensure_hosts(self.rootfs / "etc" / "hosts")
        self._clear_stale()
        rotate_console(self.instance_dir / "log")

    def _rendered(self) -> RenderedConfig:
        if self.rendered is not None:
            return self.rendered
        values = template_values(self.cfg, self.credentials(), moddir=moddir(self.rootfs))
        files = render_config(self.template_dir or base_templates(), values, self.extra_files)
        return RenderedConfig(files, frozenset(self.extra_files))

    def _spawn(self) -> int:
        argv = chroot_argv(self.rootfs, ASTERISK, "-C", self.inner_conf, "-f", "-n")
        script = 'exec </dev/null; "$@" >>"$CP_CONSOLE_LOG" 2>&1 & echo $!'
        env = {**CHROOT_ENV, "HOME": "/root",
               "CP_CONSOLE_LOG": str(self.instance_dir / "log" / "console.log")}
        done = subprocess.run(["/bin/sh", "-c", script, "sh", *argv], env=env, capture_output=True,
                              text=True, start_new_session=True, timeout=10)
        try:
            pid = int(done.stdout.strip())
        except ValueError:
            why = done.stderr.strip() or done.stdout.strip()
            raise AsteriskError(f"could not start Asterisk: {why}") from None
        record = {"pid": pid, "start": proc_start(pid), "started_at": time.time()}
        (self.run_dir / "runner.json").write_text(json.dumps(record) + "\n")
        return pid

    def _wait_booted(self, pid: int, deadline: float) -> None:
        a = self.cfg.asterisk
        ctl = self.run_dir / "asterisk.ctl"
        booted = False
        while True:
            if not alive(pid):
                raise AsteriskError(f"Asterisk ({self.mode} instance {a.instance!r}) exited during boot\n"
                                    + log_tails(self.instance_dir / "log"))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AsteriskError(
                    f"Asterisk ({self.mode} instance {a.instance!r}) not ready within {a.boot_timeout:.0f} s "
                    f"({'booted but ARI not answering' if booted else 'not fully booted'})\n"
                    + log_tails(self.instance_dir / "log"))
            if not booted and ctl.exists():
                try:
                    result = self._rx("core waitfullybooted", timeout=remaining)
                    booted = result.returncode == 0 and "fully booted" in result.stdout
                except subprocess.TimeoutExpired:
                    continue
            if booted:
                code, _ = self._probe_ari(timeout=min(2.0, max(remaining, 0.1)))
                if code == 200:
                    return
                if code == 401:
                    raise AsteriskError(f"Asterisk ({self.mode} instance {a.instance!r}) refuses our ARI "
                                        "credentials: it was started with other settings; down() then up()")
            time.sleep(0.05)

    # -- process bookkeeping

    def _pid(self) -> int | None:
        """The live Asterisk of this instance: our record first, else a scan of /proc."""
        try:
            record = json.loads((self.run_dir / "runner.json").read_text())
            pid, start = int(record["pid"]), record.get("start")
            if alive(pid) and (start is None or proc_start(pid) == start) and self._is_ours(pid):
                return pid
        except (OSError, ValueError, KeyError, TypeError):
            pass
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and self._is_ours(int(entry.name)) and alive(int(entry.name)):
                return int(entry.name)
        return None

    def _is_ours(self, pid: int) -> bool:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        args = [arg.decode(errors="replace") for arg in argv if arg]
        if not args or os.path.basename(args[0]) != "asterisk" or self.inner_conf not in args:
            return False
        return not any(arg.startswith("-r") or arg.startswith("-R") or arg == "-x" for arg in args[1:])

    def _stop(self, pid: int) -> None:
        """`core stop now`, then SIGTERM, then SIGKILL, each after a timeout."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._rx("core stop now", timeout=STOP_TIMEOUT)
        if not wait_gone(pid, STOP_TIMEOUT):
            send_signal(pid, signal.SIGTERM)
            if not wait_gone(pid, 3.0):
                send_signal(pid, signal.SIGKILL)
                wait_gone(pid, 5.0)

    def _clear_stale(self) -> None:
        for name in ("asterisk.ctl", "asterisk.pid", "runner.json"):
            (self.run_dir / name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One up/down at a time per instance, across processes (daemon, CLI, tests)."""
        self.instance_dir.mkdir(parents=True, exist_ok=True)
        with open(self.instance_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _rx(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(chroot_argv(self.rootfs, ASTERISK, "-C", self.inner_conf, "-rx", command),
                              capture_output=True, text=True, timeout=timeout, env=dict(CHROOT_ENV))
