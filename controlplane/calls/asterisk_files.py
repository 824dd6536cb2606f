"""Asterisk config files this capability drops beside the base config (runner's extra files).

``cdr_pgsql.conf`` makes Asterisk write every CDR into our ``asterisk_cdr`` table,
synchronously at hang-up (cdr.conf: batch = no): the durable record a restarted
daemon rebuilds missed calls from. ``pjsip_carrier.conf`` is the carrier trunk.
"""

from __future__ import annotations

from controlplane.config import CarrierConfig, Config
from provisioning.names import FROM_CARRIER
from provisioning.realtime_conf import PgTarget

CDR_TABLE = "asterisk_cdr"


def cdr_pgsql_conf(target: PgTarget) -> str:
    return ("; Rendered by the control plane: CDRs into its database (table asterisk_cdr).\n"
            "[global]\n"
            f"hostname={target.host}\nport={target.port}\ndbname={target.database}\n"
            f"user={target.user}\npassword={target.password}\n"
            f"appname=asterisk_cdr\ntable={CDR_TABLE}\ntimezone=UTC\n")


def carrier_pjsip_conf(carrier: CarrierConfig) -> str:
    """The trunk: outbound calls go to host:port; inbound come in as this endpoint."""
    name = carrier.endpoint
    lines = ["; Rendered by the control plane: the carrier trunk.",
             f"[{name}]", "type = aor", f"contact = sip:{carrier.host}:{carrier.port}", "",
             f"[{name}]", "type = endpoint", f"context = {FROM_CARRIER}", "disallow = all",
             "allow = ulaw,alaw", f"aors = {name}", "direct_media = no", "send_pai = yes", ""]
    if carrier.match:
        lines += [f"[{name}]", "type = identify", f"endpoint = {name}", f"match = {carrier.match}", ""]
    return "\n".join(lines)


def cdr_files(config: Config, dsn: str) -> dict[str, str]:
    files = {"cdr_pgsql.conf": cdr_pgsql_conf(PgTarget.from_dsn(dsn))}
    if config.carrier.host:
        files["pjsip_carrier.conf"] = carrier_pjsip_conf(config.carrier)
    return files
