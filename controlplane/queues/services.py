"""Queue decisions: CRUD with the overflow bound through ``Destinations``; statistics; and
the AMI follower that turns app_queue's caller events into rows and webhooks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import structlog

from controlplane.asterisk.events import AmiEvent
from controlplane.calls.ami_inputs import event_time
from controlplane.destinations import Destinations, available, pooled, release
from controlplane.events import emit
from controlplane.moh.models import tenant_class
from controlplane.queues import store
from controlplane.queues.models import (QueueCreate, QueueEvent, QueueEventKind, QueueStats, QueueUpdate,
                                        QueueView, check_queue, parse_queue_event)
from controlplane.ring_groups import store as tenants_of
from controlplane.shared.problems import FieldError, Problem
from controlplane.signals import Notice, TenantFlowsChanged
from provisioning.destinations import Destination, DestinationKind

log = structlog.get_logger(__name__)
STATS_WINDOW = timedelta(hours=24)


def _invalid(errors: dict[str, str]) -> Problem:
    return Problem(422, "invalid queue", code="invalid_request", errors=[FieldError(f, m) for f, m in errors.items()])


def _not_found(what: str) -> Problem:
    return Problem(404, f"no such {what}", code="not_found")


class QueueServices:
    def __init__(self, pool: asyncpg.Pool, destinations: Callable[[], Destinations | None],
                 flows_changed: Notice[TenantFlowsChanged]) -> None:
        self.pool = pool
        self._destinations = destinations
        self.flows_changed = flows_changed

    def destinations(self) -> Destinations:
        return available(self._destinations())

    async def _prefix(self, conn: store.Conn, partner_id: str, tenant_id: str) -> str:
        prefix = await tenants_of.tenant_prefix(conn, partner_id, tenant_id)
        if prefix is None:
            raise _not_found("tenant")
        return prefix

    async def _save(self, conn: store.Conn, prefix: str, q: QueueView, *, new: bool) -> QueueView:
        overflow, errors = check_queue(q)
        numbers = [m.number for m in q.members]
        if numbers and not errors:
            missing = await tenants_of.missing_extensions(conn, q.tenant_id, numbers)
            errors.update({f"members.{i}.number": "no such extension in this tenant"
                           for i, m in enumerate(q.members) if m.number in missing})
        if errors:
            raise _invalid(errors)
        saved = await store.save(conn, q, prefix, tenant_class(prefix), datetime.now(UTC), new=new)
        await self.destinations().bind(pooled(conn), q.tenant_id, Destination(DestinationKind.QUEUE, q.id),
                                       {} if overflow is None else {"overflow": overflow})
        return saved

    async def create(self, partner_id: str, tenant_id: str, body: QueueCreate) -> QueueView:
        now = datetime.now(UTC)
        draft = QueueView(id=str(uuid.uuid4()), tenant_id=tenant_id, created_at=now, updated_at=now,
                          **{f: getattr(body, f) for f in QueueCreate.__struct_fields__})
        async with self.pool.acquire() as conn, conn.transaction():
            prefix = await self._prefix(conn, partner_id, tenant_id)
            queue = await self._save(conn, prefix, draft, new=True)
        self._changed(tenant_id, "queues.created", queue.id)
        return queue

    async def update(self, partner_id: str, tenant_id: str, queue_id: str, body: QueueUpdate) -> QueueView:
        async with self.pool.acquire() as conn, conn.transaction():
            prefix = await self._prefix(conn, partner_id, tenant_id)
            queue = await store.get(conn, tenant_id, queue_id, lock=True)
            if queue is None:
                raise _not_found("queue")
            changes = {f: v for f in QueueUpdate.__struct_fields__ if (v := getattr(body, f)) is not msgspec.UNSET}
            queue = await self._save(conn, prefix, msgspec.structs.replace(queue, **changes), new=False)
        self._changed(tenant_id, "queues.updated", queue.id)
        return queue

    async def get(self, partner_id: str, tenant_id: str, queue_id: str) -> QueueView:
        async with self.pool.acquire() as conn:
            await self._prefix(conn, partner_id, tenant_id)
            queue = await store.get(conn, tenant_id, queue_id)
        if queue is None:
            raise _not_found("queue")
        return queue

    async def list(self, partner_id: str, tenant_id: str) -> list[QueueView]:
        async with self.pool.acquire() as conn:
            await self._prefix(conn, partner_id, tenant_id)
            return await store.list_for(conn, tenant_id)

    async def delete(self, partner_id: str, tenant_id: str, queue_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._prefix(conn, partner_id, tenant_id)
            queue = await store.get(conn, tenant_id, queue_id, lock=True)
            if queue is None:
                raise _not_found("queue")
            await release(self.destinations(), conn, tenant_id, Destination(DestinationKind.QUEUE, queue.id))
            await store.delete(conn, tenant_id, queue.id)
        self._changed(tenant_id, "queues.deleted", queue_id)

    async def stats(self, partner_id: str, tenant_id: str, queue_id: str, since: datetime | None) -> QueueStats:
        start = since or datetime.now(UTC) - STATS_WINDOW
        async with self.pool.acquire() as conn:
            await self._prefix(conn, partner_id, tenant_id)
            if await store.get(conn, tenant_id, queue_id) is None:
                raise _not_found("queue")
            return await store.stats(conn, queue_id, start)

    def _changed(self, tenant_id: str, event: str, queue_id: str) -> None:
        log.info(event, tenant_id=tenant_id, queue_id=queue_id)
        self.flows_changed.send(TenantFlowsChanged(tenant_id))


class QueueEventFollower:
    """``context.ami_events`` handler: app_queue's caller events -> queue_calls rows and the
    ``queue.*`` webhooks, in one transaction per event (a repeated event changes nothing and
    sends nothing). Events of queues that are not ours (no ``q-<uuid>`` name) are ignored."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def __call__(self, event: AmiEvent) -> None:
        parsed = parse_queue_event(event.event, event.headers, event_time(event.headers, datetime.now(UTC)))
        if parsed is None:
            return
        try:
            await self.apply(parsed)
        except Exception:  # never stop the AMI loop; the statistics miss one event at worst
            log.exception("queues.event_failed", queue_id=parsed.queue_id, kind=parsed.kind.value)

    async def apply(self, e: QueueEvent) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            found = await store.owner(conn, e.queue_id)
            if found is None:
                return False
            tenant_id, partner_id = found
            changed = await store.apply_event(conn, tenant_id, e)
            if changed and e.kind is not QueueEventKind.LEFT:
                data: dict[str, str | int | None] = {"queue_id": e.queue_id, "caller_channel": e.uniqueid,
                                                     "caller": e.caller, "at": e.at.isoformat()}
                if e.kind is QueueEventKind.JOINED:
                    data["position"] = e.position
                elif e.kind is QueueEventKind.ANSWERED:
                    data.update(answered_by=e.member, wait_s=e.hold_seconds)
                else:
                    data.update(position=e.position, wait_s=e.hold_seconds)
                await emit(conn, e.kind.value, partner_id=partner_id, tenant_id=tenant_id, data=data)
        log.debug("queues.event", kind=e.kind.value, queue_id=e.queue_id, changed=changed)
        return changed
