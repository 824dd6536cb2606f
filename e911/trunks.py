"""PJSIP text of the two emergency trunks, from the ``emergency:`` config. Pure.

Outbound only (an AOR with a static contact, no identify section): nothing that
arrives from those hosts is ever matched to these endpoints.
"""

from __future__ import annotations

from e911.routing import EMERGENCY_TRUNK, RELAY_TRUNK


def _trunk(name: str, host: str, port: int) -> str:
    return (f"[{name}]\ntype = aor\ncontact = sip:{host}:{port}\nqualify_frequency = 0\n\n"
            f"[{name}]\ntype = endpoint\naors = {name}\ncontext = cp-not-configured\ndisallow = all\n"
            "allow = ulaw,alaw\ndirect_media = no\nsend_pai = yes\ntrust_id_outbound = yes\n\n")


def render_trunks(trunk_host: str | None, trunk_port: int, relay_host: str | None, relay_port: int) -> str:
    """Both trunks; a missing relay host falls back to the emergency trunk (never no route)."""
    if trunk_host is None and relay_host is None:
        return ""
    if trunk_host is None:
        trunk_host, trunk_port = relay_host, relay_port
    relay_host, relay_port = (relay_host, relay_port) if relay_host else (trunk_host, trunk_port)
    assert trunk_host is not None and relay_host is not None
    return ("; Emergency trunks, rendered from the emergency: section of the configuration.\n"
            + _trunk(EMERGENCY_TRUNK, trunk_host, trunk_port) + _trunk(RELAY_TRUNK, relay_host, relay_port))
