"""SQL of the nodes aggregate: nodes, tenant -> node pins, the edge's route fingerprint."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from controlplane.db.connection import Connection, Executor
from controlplane.nodes.edge import Node


@dataclass(frozen=True, slots=True)
class Placement:
    tenant_id: str
    node_id: str
    assigned_at: datetime
    moved_from: str | None


async def list_nodes(db: Executor) -> list[Node]:
    rows = await db.fetch("SELECT id, set_id, sip_host, sip_port, daemon_url, accepting FROM nodes ORDER BY set_id")
    return [Node(r["id"], r["set_id"], r["sip_host"], r["sip_port"], r["daemon_url"], r["accepting"])
            for r in rows]


async def upsert_node(db: Executor, node: Node) -> bool:
    """Create or update; True when created."""
    created: bool = await db.fetchval(
        """INSERT INTO nodes (id, set_id, sip_host, sip_port, daemon_url, accepting)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (id) DO UPDATE SET set_id = $2, sip_host = $3, sip_port = $4, daemon_url = $5,
                                          accepting = $6
           RETURNING xmax = 0""",
        node.id, node.set_id, node.sip_host, node.sip_port, node.daemon_url, node.accepting)
    # Multi-node from now on: phones are fronted by the edge (migration 0028, edge_endpoint()).
    await db.execute("UPDATE ps_endpoints SET rewrite_contact = 'no' WHERE rewrite_contact IS DISTINCT FROM 'no'")
    return created


async def conflicting_node(db: Executor, node: Node) -> str | None:
    """The field another node already uses (set_id, or the SIP address), else None."""
    row = await db.fetchrow(
        """SELECT set_id = $2 AS same_set, (sip_host, sip_port) = ($3, $4) AS same_address
             FROM nodes WHERE id <> $1 AND (set_id = $2 OR (sip_host, sip_port) = ($3, $4)) LIMIT 1""",
        node.id, node.set_id, node.sip_host, node.sip_port)
    if row is None:
        return None
    return "set_id" if row["same_set"] else "sip_host"


async def placement(db: Executor, tenant_id: str) -> Placement | None:
    row = await db.fetchrow("SELECT tenant_id, node_id, assigned_at, moved_from FROM tenant_nodes"
                            " WHERE tenant_id = $1", tenant_id)
    return None if row is None else Placement(**dict(row))


async def tenant_exists(db: Executor, tenant_id: str) -> bool:
    return bool(await db.fetchval("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)", tenant_id))


async def place(conn: Connection, tenant_id: str, node_id: str) -> Placement:
    """Pin (or move) a tenant; ``moved_from`` remembers the node it left."""
    row = await conn.fetchrow(
        """INSERT INTO tenant_nodes AS t (tenant_id, node_id) VALUES ($1, $2)
           ON CONFLICT (tenant_id) DO UPDATE
              SET node_id = $2, assigned_at = now(),
                  moved_from = CASE WHEN t.node_id <> $2 THEN t.node_id ELSE t.moved_from END
           RETURNING tenant_id, node_id, assigned_at, moved_from""", tenant_id, node_id)
    assert row is not None
    return Placement(**dict(row))


async def unplaced_tenants(db: Executor) -> list[str]:
    rows = await db.fetch("SELECT id FROM tenants t WHERE status <> 'CANCELLED'"
                          " AND NOT EXISTS (SELECT 1 FROM tenant_nodes n WHERE n.tenant_id = t.id) ORDER BY id")
    return [r["id"] for r in rows]


async def place_new(conn: Connection, pins: list[tuple[str, str]]) -> int:
    """Pin tenants that have no node yet (a concurrent pin wins: ON CONFLICT DO NOTHING)."""
    if not pins:
        return 0
    result = await conn.execute(
        "INSERT INTO tenant_nodes (tenant_id, node_id) SELECT * FROM unnest($1::text[], $2::text[])"
        " ON CONFLICT (tenant_id) DO NOTHING", [p[0] for p in pins], [p[1] for p in pins])
    return int(result.split()[-1])


async def tenant_counts(db: Executor) -> dict[str, int]:
    rows = await db.fetch("SELECT node_id, count(*) AS n FROM tenant_nodes GROUP BY node_id")
    return {r["node_id"]: int(r["n"]) for r in rows}


async def routes_fingerprint(db: Executor) -> str:
    """A digest of what Kamailio's two tables hold: unchanged digest, nothing to reload."""
    value: str = await db.fetchval(
        """SELECT md5(coalesce((SELECT string_agg(key_name || '=' || key_value, ',' ORDER BY key_name)
                                  FROM kamailio_tenant_routes), '')
                      || '|' || coalesce((SELECT string_agg(key_name || '=' || key_value, ','
                                                            ORDER BY key_name)
                                            FROM kamailio_did_routes), ''))""")
    return value
