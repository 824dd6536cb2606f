"""Ring group decisions: validate (every field at fault in one 422), bind the no-answer
destination through ``Destinations`` in the same transaction, then tell the flows
capability the tenant's flows changed (after commit)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import msgspec
import structlog

from controlplane.destinations import Destinations, available, pooled, release
from controlplane.ring_groups import store
from controlplane.ring_groups.models import (MemberKind, RingGroup, RingGroupCreate, RingGroupUpdate,
                                             check_destination, check_members, check_name, check_ring_seconds)
from controlplane.shared.problems import FieldError, Problem
from controlplane.signals import Notice, TenantFlowsChanged
from provisioning.destinations import Destination, DestinationKind

log = structlog.get_logger(__name__)


def invalid(errors: dict[str, str]) -> Problem:
    return Problem(422, "invalid ring group", code="invalid_request",
                   errors=[FieldError(f, m) for f, m in errors.items()])


def not_found(what: str) -> Problem:
    return Problem(404, f"no such {what}", code="not_found")


class RingGroupServices:
    def __init__(self, pool: asyncpg.Pool, destinations: Callable[[], Destinations | None],
                 flows_changed: Notice[TenantFlowsChanged]) -> None:
        self.pool = pool
        self._destinations = destinations  # read at request time: the flows plugin sets it
        self.flows_changed = flows_changed

    def destinations(self) -> Destinations:
        return available(self._destinations())

    async def _tenant(self, conn: store.Conn, partner_id: str, tenant_id: str) -> str:
        prefix = await store.tenant_prefix(conn, partner_id, tenant_id)
        if prefix is None:
            raise not_found("tenant")
        return prefix

    async def _check(self, conn: store.Conn, tenant_id: str, group: RingGroup | RingGroupCreate
                     ) -> tuple[Destination | None, dict[str, str]]:
        errors = {**check_name(group.name), **check_members(group.members),
                  **check_ring_seconds(group.ring_seconds)}
        no_answer, bad = check_destination(group.no_answer, "no_answer")
        errors.update(bad)
        numbers = [m.number for m in group.members if m.kind is MemberKind.EXTENSION]
        if numbers and not errors:
            missing = await store.missing_extensions(conn, tenant_id, numbers)
            for i, m in enumerate(group.members):
                if m.kind is MemberKind.EXTENSION and m.number in missing:
                    errors[f"members.{i}.number"] = "no such extension in this tenant"
        return no_answer, errors

    async def _bind(self, conn: store.Conn, tenant_id: str, group_id: str, no_answer: Destination | None) -> None:
        owner = Destination(DestinationKind.RING_GROUP, group_id)
        targets = {} if no_answer is None else {"no_answer": no_answer}
        await self.destinations().bind(pooled(conn), tenant_id, owner, targets)

    async def create(self, partner_id: str, tenant_id: str, body: RingGroupCreate) -> RingGroup:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            no_answer, errors = await self._check(conn, tenant_id, body)
            if errors:
                raise invalid(errors)
            group = await store.insert(conn, tenant_id, body.name, body.strategy, body.ring_seconds,
                                       body.members, no_answer, datetime.now(UTC))
            await self._bind(conn, tenant_id, group.id, no_answer)
        self._changed(tenant_id, "ring_groups.created", group.id)
        return group

    async def update(self, partner_id: str, tenant_id: str, group_id: str, body: RingGroupUpdate) -> RingGroup:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            group = await store.get(conn, tenant_id, group_id, lock=True)
            if group is None:
                raise not_found("ring group")
            changes = {f: v for f in RingGroupUpdate.__struct_fields__
                       if (v := getattr(body, f)) is not msgspec.UNSET}
            group = msgspec.structs.replace(group, **changes)
            no_answer, errors = await self._check(conn, tenant_id, group)
            if errors:
                raise invalid(errors)
            group = await store.update(conn, group, datetime.now(UTC))
            await self._bind(conn, tenant_id, group.id, no_answer)
        self._changed(tenant_id, "ring_groups.updated", group.id)
        return group

    async def get(self, partner_id: str, tenant_id: str, group_id: str) -> RingGroup:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            group = await store.get(conn, tenant_id, group_id)
        if group is None:
            raise not_found("ring group")
        return group

    async def list(self, partner_id: str, tenant_id: str) -> list[RingGroup]:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            return await store.list_for(conn, tenant_id)

    async def delete(self, partner_id: str, tenant_id: str, group_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            group = await store.get(conn, tenant_id, group_id, lock=True)
            if group is None:
                raise not_found("ring group")
            owner = Destination(DestinationKind.RING_GROUP, group.id)
            await release(self.destinations(), conn, tenant_id, owner)
            await store.delete(conn, tenant_id, group.id)
        self._changed(tenant_id, "ring_groups.deleted", group_id)

    def _changed(self, tenant_id: str, event: str, group_id: str) -> None:
        log.info(event, tenant_id=tenant_id, ring_group_id=group_id)
        self.flows_changed.send(TenantFlowsChanged(tenant_id))
