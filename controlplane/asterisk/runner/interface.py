"""What every runner offers: the protocol, its status record and its error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from controlplane.config import Config


class AsteriskError(Exception):
    """Asterisk could not be started, stopped or reached; the message carries the log tail."""


@dataclass(frozen=True)
class AsteriskStatus:
    running: bool
    pid: int | None
    detail: str
    mode: str = "local"
    instance: str = "default"
    host: str = "127.0.0.1"
    sip_port: int = 5060
    http_port: int = 8088
    ami_port: int = 5038
    ari: bool = False  # ARI answered GET /ari/asterisk/info with our credentials
    uptime: float | None = None  # seconds since the process started
    log_dir: Path | None = None


class AsteriskRunner(Protocol):
    mode: str
    log_dir: Path | None  # None for external: its logs are not ours
    etc_dir: Path | None  # where the daemon writes extensions_tenants.conf; None for external

    def moddir(self) -> str: ...
    def up(self) -> AsteriskStatus: ...
    def down(self) -> None: ...
    def status(self) -> AsteriskStatus: ...
    def cli(self, command: str, timeout: float = 30.0) -> str: ...
    def kill(self) -> None: ...


def describe(mode: str, running: bool, pid: int | None, ari: bool, uptime: float | None,
             cfg: Config, extra: str = "") -> str:
    """The one-line ``detail`` of a status, as ``controlplane asterisk status`` prints it."""
    a = cfg.asterisk
    ports = f"sip {a.host}:{a.sip_port} udp+tcp, ari http://{a.host}:{a.http_port}, ami {a.host}:{a.ami_port}"
    if not running:
        return f"{mode} instance {a.instance!r}: not running{extra} ({ports})"
    up = f", up {uptime:.0f}s" if uptime is not None else ""
    who = f"pid {pid}{up}, " if pid else ""
    return (f"{mode} instance {a.instance!r}: running ({who}ARI {'answering' if ari else 'not answering'})"
            f"{extra}; {ports}")
