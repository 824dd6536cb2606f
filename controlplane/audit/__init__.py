"""The audit log: who changed what, for which partner and tenant, and when.

Services call ``record(conn, ...)`` inside the transaction of their change, so an
entry exists iff the change committed; the actor comes from the request context
the HTTP guard binds (``controlplane.shared.actor``). A mutation whose service wrote
no entry gets a generic one from ``MutationEntries``, which the plugin installs.
"""

from controlplane.audit.recorder import record

__all__ = ["record"]
