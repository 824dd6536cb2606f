"""``Destinations`` over ``flow_references``: validation on write, loops, "in use" on delete.

Each destination field is asked of the ``FlowSection`` whose kinds include its kind (every
capability appends its own in install; the list is read at request time, so the order of
installation does not matter). Another tenant's object is simply one that does not exist in
this tenant: the section's ``exists`` is asked with the writer's tenant id, never the ref's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

from controlplane.destinations import DestinationRejected, FlowSection
from controlplane.flows import references_store as store
from provisioning.destinations import Destination, DestinationKind
from provisioning.flow_graph import interactive, looping_fields

# Kinds that exist without an object: nothing to look up.
_ALWAYS = frozenset({DestinationKind.HANGUP, DestinationKind.EXTERNAL})


class FlowDestinations:
    """The one implementation of ``controlplane.destinations.Destinations``."""

    def __init__(self, sections: Sequence[FlowSection]) -> None:
        self._sections = sections  # the Context's list itself: sections appended later count

    def section_for(self, kind: DestinationKind) -> FlowSection | None:
        for section in self._sections:
            if kind in section.kinds:
                return section
        return None

    async def _problem(self, conn: asyncpg.Connection, tenant_id: str, destination: Destination) -> str | None:
        if destination.kind is DestinationKind.DID:
            return "a DID is not a destination"
        if destination.kind in _ALWAYS:
            return None
        section = self.section_for(destination.kind)
        if section is None:
            if destination.kind is DestinationKind.EXTENSION:
                # Until a capability owns extensions as destinations, the tenant's own table says.
                found = await store.extension_exists(conn, tenant_id, destination.ref)
                return None if found else "no such extension in this tenant"
            return f"{destination.kind.value} destinations are not available"
        if not await section.exists(conn, tenant_id, destination):
            return f"no such {destination.kind.value} in this tenant"
        return None

    async def bind(self, conn: asyncpg.Connection, tenant_id: str, owner: Destination,
                   targets: Mapping[str, Destination]) -> None:
        await store.lock_tenant(conn, tenant_id)
        errors: dict[str, str] = {}
        for field, destination in targets.items():
            if destination == owner and not interactive(owner, field):
                errors[field] = "points at itself"
                continue
            problem = await self._problem(conn, tenant_id, destination)
            if problem is not None:
                errors[field] = problem
        if not errors:
            for field in looping_fields(owner, targets, await store.edges(conn, tenant_id)):
                errors[field] = "makes a loop back to this object"
        if errors:
            raise DestinationRejected(errors)
        await store.replace(conn, tenant_id, owner, targets)

    async def unbind(self, conn: asyncpg.Connection, owner: Destination) -> None:
        await store.delete_owner(conn, owner)

    async def users(self, conn: asyncpg.Connection, tenant_id: str, target: Destination) -> list[Destination]:
        return await store.users(conn, tenant_id, target)
