"""SQL of ``flow_references``: what each call-flow object (or DID) points at."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from controlplane.db.connection import Connection

from provisioning.destinations import Destination, DestinationKind

Conn = Connection


def _destination(kind: str, ref: str) -> Destination:
    return Destination(DestinationKind(kind), ref)


async def replace(conn: Conn, tenant_id: str, owner: Destination, targets: Mapping[str, Destination]) -> None:
    await conn.execute("DELETE FROM flow_references WHERE tenant_id = $1 AND owner_kind = $2 AND owner_ref = $3",
                       tenant_id, owner.kind.value, owner.ref)
    if targets:
        await conn.executemany(
            "INSERT INTO flow_references (tenant_id, owner_kind, owner_ref, field, target_kind, target_ref)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            [(tenant_id, owner.kind.value, owner.ref, f, d.kind.value, d.ref) for f, d in targets.items()])


async def delete_owner(conn: Conn, owner: Destination) -> None:
    await conn.execute("DELETE FROM flow_references WHERE owner_kind = $1 AND owner_ref = $2",
                       owner.kind.value, owner.ref)


async def users(conn: Conn, tenant_id: str, target: Destination) -> list[Destination]:
    # A DID that left the tenant (released, reassigned) no longer uses anything of it.
    rows = await conn.fetch(
        "SELECT DISTINCT owner_kind, owner_ref FROM flow_references r"
        " WHERE tenant_id = $1 AND target_kind = $2 AND target_ref = $3"
        " AND (owner_kind <> 'did' OR owner_ref = '' OR EXISTS (SELECT 1 FROM dids d WHERE d.number = r.owner_ref"
        "      AND d.tenant_id = r.tenant_id AND d.status = 'ACTIVE'))"
        " ORDER BY owner_kind, owner_ref",
        tenant_id, target.kind.value, target.ref)
    return [_destination(r["owner_kind"], r["owner_ref"]) for r in rows]


async def edges(conn: Conn, tenant_id: str) -> list[tuple[Destination, str, Destination]]:
    """Every reference of the tenant: (owner, field, target)."""
    rows = await conn.fetch("SELECT owner_kind, owner_ref, field, target_kind, target_ref FROM flow_references"
                            " WHERE tenant_id = $1 ORDER BY owner_kind, owner_ref, field", tenant_id)
    return [(_destination(r["owner_kind"], r["owner_ref"]), r["field"],
             _destination(r["target_kind"], r["target_ref"])) for r in rows]


async def lock_tenant(conn: Conn, tenant_id: str) -> None:
    """Serialises reference changes of one tenant: two concurrent binds cannot make a loop
    that neither saw (each checks the graph the other has not committed yet)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('flows:' || $1))", tenant_id)


async def extension_exists(conn: Conn, tenant_id: str, number: str) -> bool:
    """Fallback while no capability owns the extension kind (the tenants' own table)."""
    return bool(await conn.fetchval("SELECT 1 FROM extensions WHERE tenant_id = $1 AND number = $2",
                                    tenant_id, number))
