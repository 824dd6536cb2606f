"""Configuration: one YAML file, overridden by ``CONTROLPLANE_SECTION__KEY`` variables.

Every value is validated at start; a bad one stops start-up with a single line
naming its key (``ConfigError``).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

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


# Each section says frozen=True again: msgspec inherits it, mypy (dataclass_transform) does not.
class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class HttpConfig(_Section, frozen=True):
    host: str = "127.0.0.1"
    port: int = 8080
    # None: generated once per install and kept in the data directory.
    service_token: str | None = None
    # The platform operator's token (docs/platform.md); None: generated like the service token.
    platform_token: str | None = None
    # CSV exports running at once (each may hold a database connection; more: 503), and
    # the longest one may stream before it is cut (docs/api.md).
    export_slots: int = 2
    export_seconds: float = 300.0


class DatabaseConfig(_Section, frozen=True):
    # None: an embedded PostgreSQL in the data directory.
    dsn: str | None = None
    pool_min: int = 1
    pool_max: int = 10


class AsteriskConfig(_Section, frozen=True):
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
    # RTP/RTCP ports of this instance (rtp.conf). Each call leg holds an RTP+RTCP pair,
    # a two-leg call four ports: 10,000 ports carry about 2,500 calls. Instances on one
    # host need ranges that do not overlap.
    rtp_start: int = 10000
    rtp_end: int = 19999
    # External mode: the instance directory shared with Asterisk (what Asterisk sees as
    # /srv/controlplane/<instance>); the daemon writes the whole configuration into its etc/.
    config_dir: str | None = None


class WebhooksConfig(_Section, frozen=True):
    # Encrypts endpoint signing secrets at rest. None: generated once per install
    # and kept in the data directory (set it explicitly when the database is shared).
    secret_key: str | None = None
    # Hosts or CIDRs exempt from the SSRF rules (private, loopback, ... addresses are
    # refused as targets in every mode otherwise).
    allow_targets: list[str] = []
    # Development only: deliver to loopback (127.0.0.0/8, ::1), e.g. a local receiver.
    allow_loopback: bool = False
    timeout: float = 10.0
    # One slow endpoint must not hold up the others.
    per_endpoint_concurrency: int = 4
    max_concurrency: int = 64


class CarrierConfig(_Section, frozen=True):
    """The carrier trunk: outbound calls are dialled to it, inbound calls come from it."""

    endpoint: str = "carrier"  # PJSIP endpoint name (also the channel prefix PJSIP/<endpoint>-)
    # None: no trunk is rendered (an operator's own pjsip_carrier.conf, or tests).
    host: str | None = None
    port: int = 5060
    # Inbound calls are matched by source address when set (else by From user).
    match: str | None = None


class CallsConfig(_Section, frozen=True):
    # Platform rate deck (CSV, cdr_ingest.rates columns) for wholesale international.
    wholesale_deck: str | None = None
    # Asterisk's CDRs are reconciled this often; a CDR is "settled" after settle_seconds.
    reconcile_seconds: float = 10.0
    settle_seconds: float = 5.0


class EmergencyConfig(_Section, frozen=True):
    """911/933 trunks: the E911 provider (registered callers) and the national relay.

    Calls from a number with no registered address go to the relay, whose operator
    asks for the location; a call is never refused. None: no trunk is rendered
    (an operator's own PJSIP objects named cp-emergency / cp-emergency-relay).
    """

    trunk_host: str | None = None
    trunk_port: int = 5060
    relay_host: str | None = None
    relay_port: int = 5060


class LimitsConfig(_Section, frozen=True):
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


class BillingConfig(_Section, frozen=True):
    # The platform's one currency (ISO 4217): every *_micros amount the API shows is in it.
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] = "USD"


class MetricsConfig(_Section, frozen=True):
    """Prometheus metrics (docs/operations.md): a listener of its own, without authentication,
    serving only GET /metrics. None: no listener (the metrics are still counted)."""

    host: str = "127.0.0.1"
    port: int | None = None


class MailConfig(_Section, frozen=True):
    """The SMTP relay the email outbox sends through (docs/mail.md). ``host`` None: mail is
    disabled; emails are still queued (and sent once a relay is configured)."""

    host: str | None = None
    port: int = 25
    # The sender when the partner's brand has no from-email (shown with the brand name).
    from_address: str = "noreply@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False  # STARTTLS on a plain connection (port 587)
    use_tls: bool = False  # TLS from the first byte (port 465)
    timeout: float = 30.0
    max_attempts: int = 8


class PaymentsConfig(_Section, frozen=True):
    """The platform's own payment provider (docs/payments.md). ``stripe_secret_key`` None:
    payments are disabled (every payment route and charge answers 409 payments_disabled)."""

    stripe_secret_key: str | None = None
    # None: Stripe itself; tests point it at localstripe (http://127.0.0.1:<port>).
    stripe_api_base: str | None = None
    timeout: float = 30.0


class WalletConfig(_Section, frozen=True):
    """The partner wallet (docs/wallet.md)."""

    # wallet.low_balance is emitted (and emailed) once each time a balance falls below this.
    low_balance_threshold_micros: int = 25_000_000
    # Behind the wallet_changed notifications: how often balances are checked anyway
    # (auto-recharge and the warning after a lost notification or a restart).
    sweep_seconds: float = 60.0


class TeamConfig(_Section, frozen=True):
    """Partner users (docs/team.md). ``invitation_url``: the portal's page where an invitee sets
    a password; ``{token}`` is replaced by the invitation token (the portal then calls
    POST /v1/team/invitations/accept with it)."""

    invitation_url: str = "http://127.0.0.1:3000/invitations/accept?token={token}"
    # How long a resolved X-Acting-User stays cached (another daemon sees a removal within it).
    acting_user_cache_seconds: float = 10.0


class AccountConfig(_Section, frozen=True):
    """The partner's account (docs/account.md): trial, activation, the cycle job."""

    # Credited to the wallet at activation, charged to the card with the prorated fee (whole cents).
    initial_wallet_credit_micros: int = 25_000_000
    # How often the cycle job runs (unit fees of units added mid-cycle, the 1st's charges, retries).
    unit_fee_interval_s: float = 60.0
    # How often ended trials are looked for.
    trial_expiry_interval_s: float = 60.0


class LoggingConfig(_Section, frozen=True):
    format: str = "auto"  # auto | json | console; auto = console in development
    level: str = "info"


class NodeConfig(_Section, frozen=True):
    """This daemon's node (docs/scale.md). ``id`` "local": single-node mode."""

    id: str = "local"
    # The other nodes' ids; any entry (or an id other than "local") is multi-node mode.
    peers: tuple[str, ...] = ()
    # A once-only job's lease and this node's heartbeat expire this long after the last renewal;
    # a holder that dies is replaced within it (docs/scale.md).
    lease_seconds: float = 10.0
    # Kamailio's JSON-RPC (http://<edge>:<rpc_port>/RPC): the nodes plugin reloads the edge's
    # tenant/DID tables through it (docs/scale.md, "Topology"). None: no edge to keep in sync.
    edge_rpc: str | None = None

    @property
    def multi(self) -> bool:
        return self.id != "local" or bool(self.peers)


class MediaConfig(_Section, frozen=True):
    """Tenant audio (docs/voicemail.md): prompts, music on hold, greetings, voicemail, recordings.

    ``dir`` None: ``spool/media`` of the Asterisk instance directory (what the runner shares
    with Asterisk). ``asterisk_dir``: the same directory as Asterisk sees it; None: the
    runner's (``/srv/controlplane/<instance>/spool/media``), or ``dir`` itself when set."""

    dir: str | None = None
    asterisk_dir: str | None = None
    max_upload_bytes: int = 20_000_000
    max_upload_seconds: float = 600.0
    # Kept this long unless the tenant sets its own (PUT /v1/tenants/{id}/media-retention).
    voicemail_retention_days: int = 90
    recording_retention_days: int = 90


class Config(_Section, frozen=True):
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
    billing: BillingConfig = BillingConfig()
    logging: LoggingConfig = LoggingConfig()
    account: AccountConfig = AccountConfig()
    payments: PaymentsConfig = PaymentsConfig()
    mail: MailConfig = MailConfig()
    metrics: MetricsConfig = MetricsConfig()
    wallet: WalletConfig = WalletConfig()
    team: TeamConfig = TeamConfig()
    media: MediaConfig = MediaConfig()
    node: NodeConfig = NodeConfig()

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


_TOOL_VARIABLES = {"config", "asterisk_rootfs", "asterisk_image", "asterisk_recipe_dir", "base_image",
                   "debian_mirror", "fuzz_seconds", "image", "instance"}


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = name[len(ENV_PREFIX):].lower().split("__")
        # CONTROLPLANE_CONFIG, CONTROLPLANE_ASTERISK_ROOTFS, ...: the tools' own variables, not keys.
        if len(keys) == 1 and (keys[0] in _TOOL_VARIABLES or keys[0].startswith("test_")):
            continue
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
    ports["carrier.port"] = config.carrier.port
    if config.metrics.port is not None:
        ports["metrics.port"] = config.metrics.port
    for key, port in ports.items():
        if not 1 <= port <= 65535:
            raise ConfigError(f"invalid configuration: {key}: {port} is not a TCP/UDP port (1-65535)")
    _check_ranges(config)
    _check_asterisk_values(config)
    if config.logging.format not in _LOG_FORMATS:
        raise ConfigError(f"invalid configuration: logging.format: expected one of {sorted(_LOG_FORMATS)}")
    if config.logging.level not in _LOG_LEVELS:
        raise ConfigError(f"invalid configuration: logging.level: expected one of {sorted(_LOG_LEVELS)}")
    if not 1 <= config.database.pool_min <= config.database.pool_max:
        raise ConfigError("invalid configuration: database.pool_min: must be between 1 and database.pool_max")
    if not config.asterisk.instance.isidentifier():
        raise ConfigError("invalid configuration: asterisk.instance: letters, digits and _ only")
    if config.webhooks.allow_loopback and config.mode is Mode.PRODUCTION:
        raise ConfigError("invalid configuration: webhooks.allow_loopback: development mode only"
                          " (list the host in webhooks.allow_targets instead)")
    _check_payments(config)
    credit = config.account.initial_wallet_credit_micros
    if credit < 0 or credit % 10_000:
        raise ConfigError("invalid configuration: account.initial_wallet_credit_micros: 0 or more, whole cents"
                          " (a multiple of 10000)")
    if "{token}" not in config.team.invitation_url or not config.team.invitation_url.startswith(
            ("https://", "http://")):
        raise ConfigError("invalid configuration: team.invitation_url: an http(s) URL containing {token}")
    if config.team.acting_user_cache_seconds < 0:
        raise ConfigError("invalid configuration: team.acting_user_cache_seconds: 0 or more")
    if config.http.platform_token is not None and config.http.platform_token == config.http.service_token:
        raise ConfigError("invalid configuration: http.platform_token: must differ from http.service_token")
    _check_node(config.node)


# The nodes table's id (migration 0028); it also names a NOTIFY channel (controlplane.db.node_bus).
_NODE_ID = re.compile(r"[a-z][a-z0-9-]{0,31}")


def _check_node(node: NodeConfig) -> None:
    for key, value in [("node.id", node.id), *(("node.peers", peer) for peer in node.peers)]:
        if not _NODE_ID.fullmatch(value):
            raise ConfigError(f"invalid configuration: {key}: {value!r}: a-z, then up to 31 of a-z, 0-9 and -")
    if node.id in node.peers:
        raise ConfigError("invalid configuration: node.peers: must not list node.id")
    if not node.lease_seconds >= 1.0:
        raise ConfigError("invalid configuration: node.lease_seconds: 1 or more")


# Values that end up in PJSIP config lines: a host name or address, nothing else.
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _positive(config: Config) -> dict[str, float]:
    """Keys whose value must be > 0 (durations, concurrency, sizes)."""
    return {
        "webhooks.timeout": config.webhooks.timeout,
        "media.max_upload_bytes": config.media.max_upload_bytes,
        "media.max_upload_seconds": config.media.max_upload_seconds,
        "media.voicemail_retention_days": config.media.voicemail_retention_days,
        "media.recording_retention_days": config.media.recording_retention_days,
        "webhooks.per_endpoint_concurrency": config.webhooks.per_endpoint_concurrency,
        "webhooks.max_concurrency": config.webhooks.max_concurrency,
        "mail.timeout": config.mail.timeout,
        "mail.max_attempts": config.mail.max_attempts,
        "http.export_slots": config.http.export_slots,
        "http.export_seconds": config.http.export_seconds,
        "calls.reconcile_seconds": config.calls.reconcile_seconds,
        "account.unit_fee_interval_s": config.account.unit_fee_interval_s,
        "account.trial_expiry_interval_s": config.account.trial_expiry_interval_s,
        "calls.settle_seconds": config.calls.settle_seconds,
        "limits.max_call_seconds": config.limits.max_call_seconds,
        "asterisk.boot_timeout": config.asterisk.boot_timeout,
        "database.pool_min": config.database.pool_min,
        "database.pool_max": config.database.pool_max,
    }


def _check_ranges(config: Config) -> None:
    for key, value in _positive(config).items():
        if not value > 0:  # also refuses NaN
            raise ConfigError(f"invalid configuration: {key}: {value} must be greater than 0")
    a = config.asterisk
    if not 1024 <= a.rtp_start <= 65534 or a.rtp_start % 2:
        raise ConfigError(f"invalid configuration: asterisk.rtp_start: {a.rtp_start} must be an even port "
                          "between 1024 and 65534 (RTP takes the even port, RTCP the next)")
    if not a.rtp_start < a.rtp_end <= 65535:
        raise ConfigError(f"invalid configuration: asterisk.rtp_end: {a.rtp_end} must be above "
                          f"asterisk.rtp_start ({a.rtp_start}) and at most 65535")


def valid_match(value: str) -> bool:
    """A PJSIP ``identify`` match: comma-separated addresses, CIDRs or host names."""
    items = [item.strip() for item in value.split(",")]
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            if not _HOST.fullmatch(item):
                return False
    return bool(items)


def _check_asterisk_values(config: Config) -> None:
    """Values rendered into Asterisk's configuration: nothing but names, hosts and addresses."""
    hosts = {"carrier.host": config.carrier.host, "emergency.trunk_host": config.emergency.trunk_host,
             "emergency.relay_host": config.emergency.relay_host}
    for key, host in hosts.items():
        if host is not None and not _HOST.fullmatch(host):
            raise ConfigError(f"invalid configuration: {key}: {host!r} is not a host name or address")
    if not _NAME.fullmatch(config.carrier.endpoint):
        raise ConfigError("invalid configuration: carrier.endpoint: letters, digits, _ and - only")
    match = config.carrier.match
    if match is not None and not valid_match(match):
        raise ConfigError(f"invalid configuration: carrier.match: {match!r} is not a comma-separated list "
                          "of addresses, CIDRs or host names")
    a = config.asterisk
    if a.config_dir is not None and a.run is not AsteriskRunMode.EXTERNAL:
        raise ConfigError("invalid configuration: asterisk.config_dir: only with asterisk.run: external "
                          "(the other runners own their instance directory)")


def _check_payments(config: Config) -> None:
    p = config.payments
    if p.stripe_secret_key is not None and not re.fullmatch(r"(sk|rk)_[A-Za-z0-9_]+", p.stripe_secret_key):
        raise ConfigError("invalid configuration: payments.stripe_secret_key: a Stripe secret key (sk_... or rk_...)")
    base = p.stripe_api_base
    if base is not None:
        if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", base):
            raise ConfigError("invalid configuration: payments.stripe_api_base: an http(s) URL")
        if config.mode is Mode.PRODUCTION and not base.startswith("https://"):
            raise ConfigError("invalid configuration: payments.stripe_api_base: https only in production")
    if not p.timeout > 0:
        raise ConfigError(f"invalid configuration: payments.timeout: {p.timeout} must be greater than 0")
