"""The seam between the call-flow capabilities: who may point a call where.

Each capability that owns destination kinds (voicemail boxes, IVRs, ring groups,
queues, time conditions, ...) appends a ``FlowSection`` to ``Context.flow_sections`` in
its plugin's ``install``: it says whether a ref of its kinds exists in a tenant, and
renders its part of each tenant's flows context. The flows capability owns the rest:
it sets ``Context.destinations`` (the references between objects: validation on write,
loops, "in use" on delete) and renders and applies each tenant's flows context when a
capability sends ``signals.tenant_flows_changed`` after its change committed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, cast

import asyncpg

from controlplane.db.connection import Connection
from controlplane.shared.problems import FieldError, Problem
from provisioning.destinations import Destination, DestinationKind

__all__ = ["DestinationInUse", "DestinationRejected", "Destinations", "FlowSection", "available", "pooled",
           "release"]


class DestinationRejected(Problem):
    """422: one or more destination fields point nowhere the tenant owns, or make a loop.
    ``errors`` maps each field at fault (e.g. ``options.2.destination``) to why."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__(422, "destinations rejected", code="invalid_destination",
                         errors=[FieldError(f, m) for f, m in errors.items()])


class DestinationInUse(Problem):
    """409: the object is the destination of others (named in ``used_by``)."""

    def __init__(self, used_by: Sequence[Destination]) -> None:
        super().__init__(409, "in use by other call flows", code="destination_in_use",
                         extra={"used_by": [{"kind": d.kind.value, "ref": d.ref} for d in used_by]})
        self.used_by = list(used_by)


class FlowSection(Protocol):
    """One capability's destination kinds: existence, and its lines of the flows context."""

    @property
    def kinds(self) -> frozenset[DestinationKind]: ...

    async def exists(self, conn: asyncpg.Connection, tenant_id: str, destination: Destination) -> bool:
        """True when ``destination`` (of one of ``kinds``) belongs to the tenant."""
        ...

    async def render(self, conn: asyncpg.Connection, tenant_ids: Sequence[str]) -> Mapping[str, Sequence[str]]:
        """Tenant id -> its dialplan lines in ``<prefix>-flows`` (``exten => ...`` and
        ``same => ...``, no context header), only for the tenants that have any."""
        ...


class Destinations(Protocol):
    """The references between a tenant's call-flow objects (owned by the flows capability)."""

    async def bind(self, conn: asyncpg.Connection, tenant_id: str, owner: Destination,
                   targets: Mapping[str, Destination]) -> None:
        """Validate and record what ``owner`` points at (field -> destination), replacing
        its previous references; raises ``DestinationRejected`` naming every bad field
        (another tenant's or unknown object, a loop through ``owner``)."""
        ...

    async def unbind(self, conn: asyncpg.Connection, owner: Destination) -> None:
        """Forget what ``owner`` points at (it is being deleted)."""
        ...

    async def users(self, conn: asyncpg.Connection, tenant_id: str, target: Destination) -> list[Destination]:
        """The objects (and DIDs, as ``Destination``-like owners) that point at ``target``;
        a delete refuses with ``DestinationInUse`` when this is not empty."""
        ...


def pooled(conn: Connection) -> asyncpg.Connection:
    """A pooled connection as the ``Destinations`` protocol types it (the proxy forwards all)."""
    return cast(asyncpg.Connection, conn)


def available(found: Destinations | None) -> Destinations:
    """The registry, read at request time (the flows plugin sets it); 503 while there is none."""
    if found is None:
        raise Problem(503, "call flows are not available", code="flows_unavailable")
    return found


async def release(destinations: Destinations, conn: Connection, tenant_id: str, owner: Destination) -> None:
    """Before deleting ``owner``: refuse (409 ``DestinationInUse``) while anything else points at it,
    else forget what it points at. Its own references to itself (an IVR option back to its menu,
    the only self-reference ``bind`` lets through) do not keep it alive."""
    used_by = [u for u in await destinations.users(pooled(conn), tenant_id, owner) if u != owner]
    if used_by:
        raise DestinationInUse(used_by)
    await destinations.unbind(pooled(conn), owner)
