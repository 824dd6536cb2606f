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


def carrier_match(carrier: CarrierConfig) -> str | None:
    """Where calls from the carrier come from: ``carrier.match``, else the address we dial."""
    return carrier.match or carrier.host


def carrier_pjsip_conf(carrier: CarrierConfig) -> str:
    """The trunk: outbound calls go to host:port; inbound come in as this endpoint.

    Identified by source address only (``identify_by = ip``), never by the From
    user: a phone claiming to be ``carrier`` must not enter ``from-carrier``. No
    connected-line updates (``send_connected_line = no``): when a carrier call is answered
    or transferred inside a tenant, Asterisk would tell the carrier with a re-INVITE naming
    the internal extension; a carrier needs neither, and some refuse mid-call re-INVITEs.
    """
    name = carrier.endpoint
    lines = ["; Rendered by the control plane: the carrier trunk.",
             f"[{name}]", "type = aor", f"contact = sip:{carrier.host}:{carrier.port}", "",
             f"[{name}]", "type = endpoint", f"context = {FROM_CARRIER}", "disallow = all",
             "allow = ulaw,alaw", f"aors = {name}", "direct_media = no", "send_pai = yes",
             "send_connected_line = no", "identify_by = ip", ""]
    match = carrier_match(carrier)
    if match:
        lines += [f"[{name}]", "type = identify", f"endpoint = {name}", f"match = {match}", ""]
    return "\n".join(lines)


def cdr_files(config: Config, dsn: str | None) -> dict[str, str]:
    """``cdr_pgsql.conf`` when the database is known; the trunk when ``carrier.host`` is set."""
    files = {"cdr_pgsql.conf": cdr_pgsql_conf(PgTarget.from_dsn(dsn))} if dsn is not None else {}
    if config.carrier.host:
        files["pjsip_carrier.conf"] = carrier_pjsip_conf(config.carrier)
    return files
