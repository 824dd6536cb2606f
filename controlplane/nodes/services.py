"""Nodes and tenant placement (docs/scale.md, "Topology"), and keeping the edge's tables in sync.

A tenant's node is data: ``tenant_nodes``. A tenant with no row is pinned by ``EdgeSync`` to
``stable_node`` (a stable hash over the accepting nodes) and the pin is stored, so adding a
node never moves anyone. An operator moves a tenant with ``move``: new calls and
registrations go to the new node as soon as Kamailio's ``tenant`` table is reloaded (done at
once, and by the sync within ``interval``); calls in progress keep their dialog's route to the
old node and finish there (drain).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
import structlog

from controlplane.shared.problems import FieldError, Problem
from controlplane.nodes import store
from controlplane.nodes.edge import EdgeInvalid, Node, check_node_id, stable_node
from controlplane.nodes.kamailio_cfg import DID_TABLE, TENANT_TABLE

log = structlog.get_logger("controlplane.nodes")


class EdgeRpc:
    """Kamailio's JSON-RPC over HTTP (jsonrpcs + xhttp on the edge's RPC port)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def call(self, method: str, *params: Any) -> Any:
        body = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}
        async with aiohttp.ClientSession(timeout=self.timeout) as session:
            async with session.post(self.url, json=body) as response:
                answer = await response.json(content_type=None)
        if not isinstance(answer, dict) or "error" in answer:
            raise RuntimeError(f"kamailio rpc {method}: {answer}")
        return answer.get("result")

    async def reload_routes(self) -> None:
        for table in (TENANT_TABLE, DID_TABLE):
            await self.call("htable.reload", table)


def _problem(exc: EdgeInvalid) -> Problem:
    return Problem(422, f"{exc.field}: {exc.message}", code="invalid_node", errors=[FieldError(exc.field, exc.message)])


def placement_view(p: store.Placement) -> dict[str, Any]:
    return {"tenant_id": p.tenant_id, "node_id": p.node_id, "assigned_at": p.assigned_at.isoformat(),
            "moved_from": p.moved_from}


def node_view(node: Node, tenants: int) -> dict[str, Any]:
    return {"id": node.id, "set_id": node.set_id, "sip_host": node.sip_host, "sip_port": node.sip_port,
            "daemon_url": node.daemon_url, "accepting": node.accepting, "tenants": tenants}


class NodeServices:
    def __init__(self, pool: asyncpg.Pool, edge: EdgeRpc | None) -> None:
        self.pool = pool
        self.edge = edge

    async def nodes(self) -> list[dict[str, Any]]:
        counts = await store.tenant_counts(self.pool)
        return [node_view(n, counts.get(n.id, 0)) for n in await store.list_nodes(self.pool)]

    async def put_node(self, node_id: str, document: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        errors: list[FieldError] = []
        fields: dict[str, Any] = {"id": node_id}
        for name, kind in (("set_id", int), ("sip_host", str), ("sip_port", int)):
            value = document.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                errors.append(FieldError(name, f"required, {'an integer' if kind is int else 'a string'}"))
            fields[name] = value
        fields["daemon_url"] = document.get("daemon_url")
        fields["accepting"] = document.get("accepting", True)
        if not isinstance(fields["accepting"], bool):
            errors.append(FieldError("accepting", "a boolean"))
        try:
            check_node_id(node_id, "node_id")
        except EdgeInvalid as exc:
            errors.insert(0, FieldError(exc.field, exc.message))
        if errors:
            raise Problem(422, "; ".join(f"{e.field}: {e.message}" for e in errors), code="invalid_node",
                          errors=errors)
        try:
            node = Node(**fields)
        except EdgeInvalid as exc:
            raise _problem(exc) from None
        async with self.pool.acquire() as conn, conn.transaction():
            taken = await store.conflicting_node(conn, node)
            if taken is not None:
                raise Problem(409, f"another node has this {taken}", code="node_conflict", field=taken)
            created = await store.upsert_node(conn, node)
        log.info("nodes.node_saved", node=node.id, created=created)
        return created, node_view(node, (await store.tenant_counts(self.pool)).get(node.id, 0))

    async def tenant_node(self, tenant_id: str) -> dict[str, Any]:
        found = await store.placement(self.pool, tenant_id)
        if found is None:
            if not await store.tenant_exists(self.pool, tenant_id):
                raise Problem(404, f"no tenant {tenant_id}", code="not_found")
            await self.pin_unplaced()
            found = await store.placement(self.pool, tenant_id)
            if found is None:
                raise Problem(409, "no node is registered", code="no_nodes")
        return placement_view(found)

    async def move(self, tenant_id: str, document: dict[str, Any]) -> dict[str, Any]:
        node_id = document.get("node_id")
        if not isinstance(node_id, str):
            raise Problem(422, "node_id: required, a string", code="invalid_node", field="node_id")
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.tenant_exists(conn, tenant_id):
                raise Problem(404, f"no tenant {tenant_id}", code="not_found")
            if node_id not in {n.id for n in await store.list_nodes(conn)}:
                raise Problem(422, f"node_id: no node {node_id}", code="invalid_node", field="node_id")
            placed = await store.place(conn, tenant_id, node_id)
        log.info("nodes.tenant_moved", tenant=tenant_id, node=node_id, moved_from=placed.moved_from)
        await self.push()
        return placement_view(placed)

    async def pin_unplaced(self) -> int:
        nodes = await store.list_nodes(self.pool)
        if not nodes:
            return 0
        pins = [(tenant_id, stable_node(tenant_id, nodes).id) for tenant_id in await store.unplaced_tenants(self.pool)]
        async with self.pool.acquire() as conn:
            return await store.place_new(conn, pins)

    async def push(self) -> None:
        """Reload the edge's tables now (a failure is logged; the sync retries)."""
        if self.edge is None:
            return
        try:
            await self.edge.reload_routes()
        except (OSError, aiohttp.ClientError, RuntimeError, asyncio.TimeoutError) as exc:
            log.warning("nodes.edge_reload_failed", error=str(exc))


class EdgeSync:
    """Pins new tenants and reloads Kamailio's tables whenever what they hold changed."""

    def __init__(self, services: NodeServices, interval: float = 1.0) -> None:
        self.services = services
        self.interval = interval
        self.fingerprint: str | None = None

    async def once(self) -> bool:
        """One round; True when the edge was reloaded."""
        await self.services.pin_unplaced()
        current = await store.routes_fingerprint(self.services.pool)
        if current == self.fingerprint or self.services.edge is None:
            return False
        started = time.monotonic()
        await self.services.edge.reload_routes()
        self.fingerprint = current
        log.info("nodes.edge_reloaded", ms=round((time.monotonic() - started) * 1000, 1))
        return True

    async def run(self) -> None:
        while True:
            try:
                await self.once()
            except (OSError, aiohttp.ClientError, RuntimeError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
                log.warning("nodes.edge_sync_failed", error=str(exc))
            await asyncio.sleep(self.interval)
