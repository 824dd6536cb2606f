"""The event outbox: ``emit()`` inside your transaction; the registry of event types.

    from controlplane.events import emit

    async with conn.transaction():
        await conn.execute("UPDATE tenants SET status = 'SUSPENDED' ...")
        await emit(conn, "tenant.suspended", partner_id=p, tenant_id=t, data={"tenant": {...}})
"""

from controlplane.events.emit import NotInTransaction, emit
from controlplane.events.envelope import Event
from controlplane.events.registry import EVENT_TYPES, UnknownEventType

__all__ = ["EVENT_TYPES", "Event", "NotInTransaction", "UnknownEventType", "emit"]
