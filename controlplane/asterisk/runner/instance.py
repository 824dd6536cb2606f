"""An instance's own directory (``etc run log spool db``): claiming it, and reading its logs."""

from __future__ import annotations

import os
import re
from pathlib import Path

from controlplane.asterisk.runner.interface import AsteriskError
from controlplane.asterisk.runner.probes import wait_ports_free
from controlplane.config import Config

# log/cdr-csv: cdr_csv's Master.csv (cdr.conf); cdr_csv does not create it, and without it
# every call logged an ERROR and a WARNING (found by bench_calls, docs/performance.md).
INSTANCE_SUBDIRS = ("etc", "run", "log", "log/cdr-csv", "spool", "spool/cache", "db")
ASTERISK = "/usr/sbin/asterisk"  # in the root filesystem and in the image alike
STOP_TIMEOUT = 10.0
_LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d ")  # a logger line, also written to messages.log


def claim_instance(cfg: Config, mode: str, instance_dir: Path) -> None:
    """Before a start: the ports must be free; the directories exist, private to root."""
    a = cfg.asterisk
    busy = wait_ports_free(a.host, [a.sip_port, a.http_port, a.ami_port], [a.sip_port])
    if busy:
        raise AsteriskError(f"{mode} instance {a.instance!r}: port(s) {', '.join(busy)} on {a.host} "
                            "already in use; pick other asterisk.*_port values")
    for sub in INSTANCE_SUBDIRS:
        (instance_dir / sub).mkdir(parents=True, exist_ok=True)
    instance_dir.chmod(0o700)


def rotate_console(log_dir: Path) -> None:
    """Keep the previous run's console output as console.log.1."""
    console = log_dir / "console.log"
    if console.exists():
        console.replace(console.with_name("console.log.1"))


def tail(path: Path, lines: int = 30) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def log_tails(log_dir: Path) -> str:
    """messages.log's tail, plus what only the console saw (before the logger was up, crashes)."""
    parts = []
    console = [line for line in tail(log_dir / "console.log", 200).splitlines()
               if not _LOG_LINE.match(line)][-15:]
    if console:
        parts.append(f"--- {log_dir / 'console.log'} (not in messages.log) ---\n" + "\n".join(console))
    messages = tail(log_dir / "messages.log")
    if messages:
        parts.append(f"--- {log_dir / 'messages.log'} (tail) ---\n{messages}")
    return "\n".join(parts) or f"(no log in {log_dir})"

