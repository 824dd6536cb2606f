"""Domain events of this capability, written through the transactional outbox.

Names are those of controlplane/events/registry.py; each payload wraps the
record under its kind (``{"tenant": {...}}``), like the registry's example.
"""

from __future__ import annotations

from typing import Any

import msgspec

from controlplane.events import emit as _emit
from controlplane.tenants.models import Did, Extension, Tenant, TenantStatus
from controlplane.tenants.store import Conn


async def _send(conn: Conn, event_type: str, partner_id: str, tenant_id: str | None, key: str,
                record: msgspec.Struct, **extra: Any) -> None:
    await _emit(conn, event_type, partner_id=partner_id, tenant_id=tenant_id, data={key: record, **extra})


def tenant_event(before: TenantStatus | None, after: TenantStatus) -> str:
    if before is None:
        return "tenant.created"
    if after is before:
        return "tenant.updated"
    if after is TenantStatus.CANCELLED:
        return "tenant.deleted"
    if after is TenantStatus.SUSPENDED:
        return "tenant.suspended"
    if before is TenantStatus.SUSPENDED:
        return "tenant.unsuspended"
    return "tenant.updated"  # TRIAL -> ACTIVE, or a reactivation from CANCELLED


async def tenant(conn: Conn, record: Tenant, before: TenantStatus | None) -> None:
    await _send(conn, tenant_event(before, record.status), record.partner_id, record.id, "tenant", record,
                previous_status=before.value if before else None)


async def extension(conn: Conn, event_type: str, partner_id: str, record: Extension) -> None:
    await _send(conn, event_type, partner_id, record.tenant_id, "extension", record)


async def did(conn: Conn, event_type: str, record: Did, tenant_id: str | None) -> None:
    await _send(conn, event_type, record.partner_id, tenant_id, "phone_number", record)
