"""Emergency calls that left through the national relay: alert the partner.

The dialplan (tenant.conf.j2, ``<prefix>-emergency``) dials the relay trunk when
the caller's tenant has no registered address (or the E911 trunk failed). AMI's
DialBegin names the caller's channel (``PJSIP/<prefix>_<ext>-...``) and the relay
channel; from the prefix we find the tenant, then log and emit
``e911.unregistered_call`` so the partner can fix the registration.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

from controlplane.events import emit
from e911.routing import RELAY_TRUNK
from provisioning.names import channel_endpoint

log = structlog.get_logger(__name__)


def relay_call(headers: dict[str, Any]) -> tuple[str, str, str] | None:
    """(prefix, extension, dialed) when a DialBegin is a tenant phone dialling the relay trunk. Pure."""
    dest = str(headers.get("DestChannel", ""))
    if not dest.startswith(f"PJSIP/{RELAY_TRUNK}-"):
        return None
    caller = channel_endpoint(str(headers.get("Channel", "")))
    if caller is None:
        return None
    dialed = str(headers.get("DialString", "")).split("@", 1)[0] or str(headers.get("Exten", ""))
    return caller.prefix, caller.number, dialed


async def record_relay_call(pool: asyncpg.Pool, headers: dict[str, Any]) -> bool:
    found = relay_call(headers)
    if found is None:
        return False
    prefix, ext, dialed = found
    async with pool.acquire() as conn, conn.transaction():
        tenant = await conn.fetchrow("SELECT id, partner_id, name FROM tenants WHERE sip_prefix = $1", prefix)
        if tenant is None:
            return False
        caller_id = str(headers.get("CallerIDNum", ""))
        registered = await conn.fetchval("SELECT 1 FROM dids WHERE tenant_id = $1 AND number = $2 AND"
                                         " e911_status = 'REGISTERED'", tenant["id"], caller_id)
        reason = "emergency_trunk_failed" if registered else "no_registered_address"
        data = {"tenant_id": tenant["id"], "tenant_name": tenant["name"], "extension": ext, "dialed": dialed,
                "caller_id": caller_id or None, "reason": reason, "channel": headers.get("Channel"),
                "linkedid": headers.get("Linkedid")}
        await emit(conn, "e911.unregistered_call", partner_id=tenant["partner_id"], tenant_id=tenant["id"],
                   data=data)
    log.warning("e911.unregistered_call", tenant_id=tenant["id"], partner_id=tenant["partner_id"], extension=ext,
                dialed=dialed, reason=reason)
    return True
