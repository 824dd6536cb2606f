"""Nodes and tenant placement against PostgreSQL (controlplane.nodes): registering nodes,
refusals naming their fields, the stable default pin, moves remembered, the edge's views."""

from __future__ import annotations

import asyncpg
import pytest

from controlplane.nodes import store
from controlplane.nodes.edge import stable_node
from controlplane.nodes.services import EdgeSync, NodeServices
from controlplane.shared.problems import Problem


async def tenant(pool: asyncpg.Pool, n: int, prefix: str) -> str:
    await pool.execute("INSERT INTO partners (id, name, tier) VALUES ('ptr_n', 'N', 'BUSINESS')"
                       " ON CONFLICT DO NOTHING")
    await pool.execute("INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status)"
                       " VALUES ($1, 'ptr_n', $1, $2, 'b@x.co', 'ACTIVE')", f"ten_{n}", prefix)
    return f"ten_{n}"


async def test_nodes_placement_moves_and_the_edge_views(pool: asyncpg.Pool) -> None:
    services = NodeServices(pool, None)
    created, node = await services.put_node("node-a", {"set_id": 1, "sip_host": "10.0.0.11", "sip_port": 5060})
    assert created and node["tenants"] == 0
    created, _ = await services.put_node("node-b", {"set_id": 2, "sip_host": "10.0.0.12", "sip_port": 5060})
    assert created
    # Every field at fault is named; nothing is written.
    with pytest.raises(Problem) as refused:
        await services.put_node("Node_C", {"set_id": "x", "sip_host": 5, "accepting": "yes"})
    assert refused.value.status == 422
    assert [e.field for e in refused.value.errors] == ["node_id", "set_id", "sip_host", "sip_port", "accepting"]
    with pytest.raises(Problem) as refused:
        await services.put_node("node-c", {"set_id": 1, "sip_host": "10.0.0.13", "sip_port": 5060})
    assert refused.value.status == 409 and refused.value.field == "set_id"
    with pytest.raises(Problem) as refused:
        await services.put_node("node-c", {"set_id": 3, "sip_host": "10.0.0.13;lr", "sip_port": 5060})
    assert refused.value.status == 422 and refused.value.field == "sip_host"
    assert [n.id for n in await store.list_nodes(pool)] == ["node-a", "node-b"]

    ids = [await tenant(pool, i, f"pfx{i:03d}") for i in range(6)]
    nodes = await store.list_nodes(pool)
    # Unplaced tenants are pinned to the stable hash, and stay there.
    assert await EdgeSync(services).once() is False  # no edge: nothing reloaded, but pinned
    for tenant_id in ids:
        assert (await services.tenant_node(tenant_id))["node_id"] == stable_node(tenant_id, nodes).id
    moved = await services.move(ids[0], {"node_id": "node-b" if stable_node(ids[0], nodes).id == "node-a"
                                         else "node-a"})
    assert moved["moved_from"] == stable_node(ids[0], nodes).id
    with pytest.raises(Problem) as refused:
        await services.move(ids[0], {"node_id": "node-z"})
    assert refused.value.status == 422 and refused.value.field == "node_id"
    with pytest.raises(Problem) as refused:
        await services.move("ten_missing", {"node_id": "node-a"})
    assert refused.value.status == 404
    # What Kamailio loads: prefix -> dispatcher set of the tenant's node.
    routes = {r["key_name"]: r["key_value"] for r in await pool.fetch("SELECT * FROM kamailio_tenant_routes")}
    assert routes["pfx000"] == ("2" if moved["node_id"] == "node-b" else "1") and len(routes) == 6
    before = await store.routes_fingerprint(pool)
    await services.move(ids[1], {"node_id": "node-a"})
    await services.move(ids[1], {"node_id": "node-b"})
    assert (await store.routes_fingerprint(pool) == before) == (stable_node(ids[1], nodes).id == "node-b")
    # Multi-node: phones behind the edge keep their own contacts.
    await pool.execute("INSERT INTO ps_endpoints (id, tenant_id, rewrite_contact) VALUES ('pfx000_101', $1, 'yes')",
                       ids[0])
    assert await pool.fetchval("SELECT rewrite_contact FROM ps_endpoints WHERE id = 'pfx000_101'") == "no"
