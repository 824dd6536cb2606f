"""The Asterisk config files that point PJSIP sorcery at our PostgreSQL.

``sorcery.conf`` keeps the static file first (transports, test endpoints in
``pjsip_extra.conf``) and falls back to realtime, so tenant objects come from
the ``ps_*`` tables the applier writes and need no PJSIP reload. Contacts are
realtime too: dropping an extension's registrations is then one DELETE.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from provisioning.validate import Invalid

REALTIME_TABLES = ("ps_endpoints", "ps_auths", "ps_aors", "ps_contacts")
_SAFE = re.compile(r"[A-Za-z0-9._~-]{1,128}")


@dataclass(frozen=True, slots=True)
class PgTarget:
    """Where Asterisk's res_config_pgsql connects (loopback TCP, password auth)."""

    host: str
    port: int
    database: str
    user: str
    password: str

    @classmethod
    def from_dsn(cls, dsn: str) -> PgTarget:
        parts = urlsplit(dsn)
        target = cls(host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                     database=unquote(parts.path.lstrip("/")), user=unquote(parts.username or ""),
                     password=unquote(parts.password or ""))
        for field in ("host", "database", "user", "password"):
            # A config value cannot be quoted in Asterisk's format: ';' starts a comment.
            if not _SAFE.fullmatch(getattr(target, field)):
                raise Invalid(f"database.{field}", "must be letters, digits and . _ ~ - for Asterisk")
        return target


def sorcery_conf() -> str:
    """Static objects first, then realtime, which never answers "every object".

    ``allow_unqualified_fetch=no``: a fetch of *all* endpoints/auths/AORs returns
    only the static ones. Without it, res_pjsip at load (persistent endpoints, the
    OPTIONS/qualify bookkeeping of every AOR, one contacts query per AOR) and
    chan_pjsip at load (device state of every endpoint) walk every realtime row:
    at 20,000 endpoints that was 60-70 s before FullyBooted, plus thousands of
    device-state look-ups after it. Objects are still found by id (REGISTER,
    INVITE, Dial) - the only thing PJSIP needs from them; the listing CLI/ARI
    commands (`pjsip show endpoints`) show the static objects only: the tenant
    objects are in the database (see docs/provisioning.md).
    """
    lines = ["; Rendered by the control plane: PJSIP objects from the static file, then PostgreSQL.",
             "; Realtime never returns all rows: loading 20k endpoints at boot took a minute.",
             "[res_pjsip]"]
    for kind, table in (("endpoint", "ps_endpoints"), ("auth", "ps_auths"), ("aor", "ps_aors")):
        lines.append(f"{kind}=config,pjsip.conf,criteria=type={kind}")
        lines.append(f"{kind}=realtime,{table},allow_unqualified_fetch=no")
    lines.append("contact=realtime,ps_contacts")
    return "\n".join(lines) + "\n"


# Other realtime families: family -> the table or view Asterisk reads.
# voicemail: app_voicemail's boxes (controlplane/voicemail), a view over the extensions.
REALTIME_FAMILIES = {"voicemail": "voicemail_realtime"}


def extconfig_conf() -> str:
    body = "".join(f"{table} => pgsql,general,{table}\n" for table in REALTIME_TABLES)
    body += "".join(f"{family} => pgsql,general,{view}\n" for family, view in REALTIME_FAMILIES.items())
    return "; Rendered by the control plane.\n[settings]\n" + body


def res_pgsql_conf(target: PgTarget) -> str:
    return ("; Rendered by the control plane: Asterisk reads PJSIP objects from our database.\n"
            "[general]\n"
            f"dbhost = {target.host}\n"
            f"dbport = {target.port}\n"
            f"dbname = {target.database}\n"
            f"dbuser = {target.user}\n"
            f"dbpass = {target.password}\n"
            "requirements = warn\n")


def realtime_files(target: PgTarget) -> dict[str, str]:
    """File name -> content, for the runner's extra-files seam."""
    return {"sorcery.conf": sorcery_conf(), "extconfig.conf": extconfig_conf(),
            "res_pgsql.conf": res_pgsql_conf(target)}
