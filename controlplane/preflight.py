"""Start-up checks: what stops the daemon before it starts anything, and what it warns about.

``findings`` is pure (config in, findings out); ``port_taken`` is the one probe of
the machine, run before PostgreSQL and Asterisk start.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from enum import StrEnum

from controlplane.calls.asterisk_files import carrier_match
from controlplane.config import Config, Mode


class StartupError(Exception):
    """The daemon cannot start; the message is one line naming what to fix."""


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    key: str
    message: str

    def line(self) -> str:
        return f"{self.key}: {self.message}"


def emergency_configured(config: Config) -> bool:
    return bool(config.emergency.trunk_host or config.emergency.relay_host)


def findings(config: Config) -> list[Finding]:
    """Pure: the configuration's problems for a daemon about to start."""
    out: list[Finding] = []
    production = config.mode is Mode.PRODUCTION
    if not emergency_configured(config):
        text = ("no emergency trunk: 911/933 would dial endpoints that do not exist; "
                "set emergency.trunk_host (and emergency.relay_host)")
        out.append(Finding(Severity.ERROR if production else Severity.WARNING, "emergency.trunk_host", text))
    carrier = config.carrier
    if carrier.host is None:
        out.append(Finding(Severity.WARNING, "carrier.host",
                           "no carrier trunk rendered: outbound calls need your own pjsip_carrier.conf"))
    elif carrier.match is None:
        out.append(Finding(Severity.WARNING, "carrier.match",
                           f"not set: calls are accepted as the carrier only from {carrier_match(carrier)} "
                           "(carrier.host); set the carrier's signalling addresses/CIDRs"))
    return out


# Secrets every daemon must share: generated ones live in one daemon's data directory only.
SHARED_SECRETS = ("http.service_token", "http.platform_token", "webhooks.secret_key")


def unshared_secrets(config: Config) -> list[str]:
    """Pure: in multi-node mode, the shared secrets the config leaves to be generated."""
    if not config.node.multi:
        return []
    values = {"http.service_token": config.http.service_token, "http.platform_token": config.http.platform_token,
              "webhooks.secret_key": config.webhooks.secret_key}
    return [key for key in SHARED_SECRETS if not values[key]]


def port_taken(host: str, port: int) -> bool:
    """True when something already listens on (or holds) ``host:port`` for TCP."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise StartupError(f"http.host: cannot bind {host}:{port} ({exc.strerror})") from None
    return False


def check(config: Config) -> list[Finding]:
    """Before anything starts: raise ``StartupError`` on the first error; return the warnings."""
    missing = unshared_secrets(config)
    if missing:
        raise StartupError(f"{', '.join(missing)}: not set, and node {config.node.id!r} is one of several "
                           "(docs/scale.md): a generated secret would differ per daemon; set the same value "
                           "in every daemon's configuration")
    http = config.http
    if port_taken(http.host, http.port):
        raise StartupError(f"http.port: {http.host}:{http.port} is already in use; "
                           "stop what holds it or pick another http.port")
    metrics = config.metrics
    if metrics.port is not None and port_taken(metrics.host, metrics.port):
        raise StartupError(f"metrics.port: {metrics.host}:{metrics.port} is already in use; "
                           "stop what holds it or pick another metrics.port")
    found = findings(config)
    for finding in found:
        if finding.severity is Severity.ERROR:
            raise StartupError(f"{finding.line()} (mode: production)")
    return found
