"""The cached Debian root filesystem the local runner chroots into (built by ``asterisk/build-rootfs.sh``)."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from controlplane.asterisk.runner.config_files import recipe_dir
from controlplane.asterisk.runner.instance import tail
from controlplane.asterisk.runner.interface import AsteriskError

PROGRESS_SECONDS = 30.0
BUILD_TIMEOUT = 1800.0
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def default_rootfs() -> Path:
    """Where build-rootfs.sh builds by default (same variables, same order)."""
    env = os.environ.get("CONTROLPLANE_ASTERISK_ROOTFS")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "controlplane" / "asterisk-rootfs"


def chroot_argv(rootfs: Path, *argv: str) -> list[str]:
    """``argv`` run inside ``rootfs``."""
    return [shutil.which("chroot") or "/usr/sbin/chroot", str(rootfs), *argv]


def ensure_rootfs(rootfs: Path, build_log: Path) -> None:
    """Build the root filesystem unless it is ready; one build at a time, across processes."""
    marker = rootfs / ".controlplane-rootfs-ready"
    if marker.exists():
        return
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    with open(rootfs.with_name(rootfs.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the script starts with rm -rf
        if not marker.exists():
            _build_rootfs(rootfs, build_log)


def _build_rootfs(rootfs: Path, log: Path) -> None:
    script = recipe_dir() / "build-rootfs.sh"
    if not script.exists():
        raise AsteriskError(f"no Asterisk root filesystem at {rootfs}: build it from the source tree with "
                            f"`sudo bash asterisk/build-rootfs.sh {rootfs}` (or set asterisk.rootfs, "
                            "or CONTROLPLANE_ASTERISK_RECIPE_DIR to the asterisk/ directory)")
    log.parent.mkdir(parents=True, exist_ok=True)
    _progress(f"building the Asterisk root filesystem into {rootfs} (once; several minutes; log: {log})")
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(["bash", str(script), str(rootfs)], stdout=out, stderr=subprocess.STDOUT)
        try:
            while proc.poll() is None:
                try:
                    proc.wait(PROGRESS_SECONDS)
                except subprocess.TimeoutExpired:
                    last = (tail(log, 1) or "").strip()[:120]
                    _progress(f"still building ({time.monotonic() - started:.0f} s): {last}")
                if time.monotonic() - started > BUILD_TIMEOUT:
                    proc.kill()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if proc.returncode != 0:
        raise AsteriskError(f"building the Asterisk root filesystem failed (see {log}):\n{tail(log)}")
    _progress(f"Asterisk root filesystem ready ({time.monotonic() - started:.0f} s)")


def _progress(line: str) -> None:
    """A line the operator sees whatever the log format (a build takes minutes)."""
    print(f"controlplane: {line}", file=sys.stderr, flush=True)


def moddir(rootfs: Path) -> str:
    """Asterisk's module directory, as seen inside the chroot."""
    found = sorted(rootfs.glob("usr/lib/*/asterisk/modules"))
    if not found:
        raise AsteriskError(f"{rootfs}: no usr/lib/*/asterisk/modules; rebuild the root filesystem")
    return "/" + str(found[0].relative_to(rootfs))


def ensure_hosts(hosts: Path) -> None:
    """Asterisk blocks on DNS look-ups of its own host name unless /etc/hosts knows it."""
    name = socket.gethostname()
    try:
        text = hosts.read_text()
    except FileNotFoundError:
        text = ""
    for line in text.splitlines():
        tokens = line.split("#", 1)[0].split()
        if name in tokens[1:]:
            return
    kept = [line for line in text.splitlines() if not line.split("#", 1)[0].split()[:1] == ["127.0.0.1"]]
    hosts.write_text(f"127.0.0.1 localhost {name}\n" + "".join(f"{line}\n" for line in kept))

