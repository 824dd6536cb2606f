"""The audit log: who changed what, for which partner and tenant, and when.

Services call ``record(conn, ...)`` inside the transaction of their change, so an
entry exists iff the change committed; the actor comes from the request context
the middleware binds (``bind_actor``).
"""

from controlplane.audit.recorder import Actor, bind_actor, current_actor, record, reset_actor

__all__ = ["Actor", "bind_actor", "current_actor", "record", "reset_actor"]
