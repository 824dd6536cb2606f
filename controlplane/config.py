"""Configuration: one YAML file, overridden by ``CONTROLPLANE_SECTION__KEY`` variables.

Every value is validated at start; a bad one stops start-up with a single line
naming its key (``ConfigError``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import msgspec
import yaml

ENV_PREFIX = "CONTROLPLANE_"
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]*)`")


class ConfigError(Exception):
    """A configuration value is missing, unknown or of the wrong type."""


class Mode(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class AsteriskRunMode(StrEnum):
    AUTO = "auto"  # container when a Docker engine answers, else the local rootfs
    LOCAL = "local"
    CONTAINER = "container"
    EXTERNAL = "external"  # someone else runs Asterisk; we only connect


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class HttpConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    # None: generated once per install and kept in the data directory.
    service_token: str | None = None


class DatabaseConfig(_Section):
    # None: an embedded PostgreSQL in the data directory.
    dsn: str | None = None
    pool_min: int = 1
    pool_max: int = 10


class AsteriskConfig(_Section):
    run: AsteriskRunMode = AsteriskRunMode.AUTO
    # None: a cache directory outside the repository (see asterisk/build-rootfs.sh).
    rootfs: str | None = None
    instance: str = "default"
    host: str = "127.0.0.1"
    sip_port: int = 5060
    http_port: int = 8088
    ami_port: int = 5038
    ari_user: str = "controlplane"
    ami_user: str = "controlplane"
    # None: generated once per install and kept in the data directory.
    ari_password: str | None = None
    ami_password: str | None = None
    app: str = "controlplane"
    boot_timeout: float = 30.0


class WebhooksConfig(_Section):
    # Encrypts endpoint signing secrets at rest. None: generated once per install
    # and kept in the data directory (set it explicitly when the database is shared).
    secret_key: str | None = None
    # Hosts or CIDRs that production mode may deliver to despite the SSRF rules.
    allow_targets: list[str] = []
    timeout: float = 10.0
    # One slow endpoint must not hold up the others.
    per_endpoint_concurrency: int = 4
    max_concurrency: int = 64


class CarrierConfig(_Section):
    """The carrier trunk: outbound calls are dialled to it, inbound calls come from it."""

    endpoint: str = "carrier"  # PJSIP endpoint name (also the channel prefix PJSIP/<endpoint>-)
    # None: no trunk is rendered (an operator's own pjsip_carrier.conf, or tests).
    host: str | None = None
    port: int = 5060
    # Inbound calls are matched by source address when set (else by From user).
    match: str | None = None


class CallsConfig(_Section):
    # Platform rate deck (CSV, cdr_ingest.rates columns) for wholesale international.
    wholesale_deck: str | None = None
    # Asterisk's CDRs are reconciled this often; a CDR is "settled" after settle_seconds.
    reconcile_seconds: float = 10.0
    settle_seconds: float = 5.0


class EmergencyConfig(_Section):
    """911/933 trunks: the E911 provider (registered callers) and the national relay.

    Calls from a number with no registered address go to the relay, whose operator
    asks for the location; a call is never refused. None: no trunk is rendered
    (an operator's own PJSIP objects named cp-emergency / cp-emergency-relay).
    """

    trunk_host: str | None = None
    trunk_port: int = 5060
    relay_host: str | None = None
    relay_port: int = 5060


class LimitsConfig(_Section):
    """Usage caps in the call path (docs/limits.md): the FastAGI admission server."""

    enabled: bool = True
    # Where Asterisk reaches the daemon's admission server (AGI(agi://host:port/admit)).
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # Billable outbound calls when the server does not answer: refused with 503 (false,
    # the default: fail closed) or let through (true). Internal and emergency: always open.
    fail_open: bool = False
    # Longest cut-off an admitted call gets (and reserves) when a cap applies.
    max_call_seconds: int = 14400


class LoggingConfig(_Section):
    format: str = "auto"  # auto | json | console; auto = console in development
    level: str = "info"


class Config(_Section):
    mode: Mode = Mode.DEVELOPMENT
    data_dir: str = "var"
    http: HttpConfig = HttpConfig()
    database: DatabaseConfig = DatabaseConfig()
    asterisk: AsteriskConfig = AsteriskConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    carrier: CarrierConfig = CarrierConfig()
    calls: CallsConfig = CallsConfig()
    emergency: EmergencyConfig = EmergencyConfig()
    limits: LimitsConfig = LimitsConfig()
    logging: LoggingConfig = LoggingConfig()

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()


_LOG_FORMATS = {"auto", "json", "console"}
_LOG_LEVELS = {"debug", "info", "warning", "error"}


def load_config(path: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Read the YAML file (if any), apply environment overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path}: not valid YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: the top level must be a mapping")
        raw = loaded
    _apply_env(raw, os.environ if environ is None else environ)
    try:
        config = msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {_keyed(str(exc))}") from None
    _check_values(config)
    return config


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = name[len(ENV_PREFIX):].lower().split("__")
        node = raw
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"invalid configuration: {name} sets inside `{key}`, which is not a section")
            node = child
        node[keys[-1]] = None if value == "" else value


def _keyed(message: str) -> str:
    # msgspec says "... - at `$.http.port`"; name the key the way a user writes it.
    text, _, where = message.rpartition(" - at ")
    if not text:
        text, where = message, ""
    key = where.strip("`").removeprefix("$").lstrip(".")
    unknown = _UNKNOWN.fullmatch(text)
    if unknown:
        return f"{key + '.' if key else ''}{unknown.group(1)}: unknown key"
    return f"{key}: {text}" if key else text


def _check_values(config: Config) -> None:
    ports = {
        "http.port": config.http.port,
        "asterisk.sip_port": config.asterisk.sip_port,
        "asterisk.http_port": config.asterisk.http_port,
        "asterisk.ami_port": config.asterisk.ami_port,
        "emergency.trunk_port": config.emergency.trunk_port,
        "emergency.relay_port": config.emergency.relay_port,
        "limits.agi_port": config.limits.agi_port,
    }
    for key, port in ports.items():
        if not 1 <= port <= 65535:
            raise ConfigError(f"invalid configuration: {key}: {port} is not a TCP/UDP port (1-65535)")
    if config.logging.format not in _LOG_FORMATS:
        raise ConfigError(f"invalid configuration: logging.format: expected one of {sorted(_LOG_FORMATS)}")
    if config.logging.level not in _LOG_LEVELS:
        raise ConfigError(f"invalid configuration: logging.level: expected one of {sorted(_LOG_LEVELS)}")
    if not 1 <= config.database.pool_min <= config.database.pool_max:
        raise ConfigError("invalid configuration: database.pool_min: must be between 1 and database.pool_max")
    if not config.asterisk.instance.isidentifier():
        raise ConfigError("invalid configuration: asterisk.instance: letters, digits and _ only")
