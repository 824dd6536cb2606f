"""Decisions of the flows API: IVR menus, time conditions, DID routes, the unassigned-DID
behaviour. Each write validates every field (422 naming them, nothing changed), binds its
destination fields through the registry in the same transaction, records audit and event,
and after commit sends ``tenant_flows_changed`` (the applier makes it live)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
import msgspec

from controlplane import audit
from controlplane.destinations import Destinations, pooled, release
from controlplane.events.emit import emit
from controlplane.flows import store
from controlplane.flows.models import (DestinationBody, DidRoute, FlowSettings, HoursBody, Ivr, IvrBody, Prompt,
                                       RouteBody,
                                       TimeCondition, TimeConditionBody, check_ivr, check_time_condition,
                                       destination)
from controlplane.shared.audio import normalize
from controlplane.shared.media import MediaKey, MediaKind, MediaStore
from controlplane.shared.problems import FieldError, Problem
from controlplane.signals import Notice, TenantFlowsChanged
from provisioning.destinations import Destination, DestinationKind


PROMPT_MAX_BYTES = 1024 * 1024  # the RPC's request limit (client_max_size) too
PROMPT_MAX_SECONDS = 60.0
_PROMPT_NAME = re.compile(r"[0-9a-z][0-9a-z-]{0,62}")


def invalid(errors: Mapping[str, str]) -> Problem:
    return Problem(422, "; ".join(f"{f}: {m}" for f, m in errors.items()), code="invalid",
                   errors=[FieldError(f, m) for f, m in errors.items()])


def _found(row: asyncpg.Record | None) -> asyncpg.Record:
    if row is None:  # read back in the transaction that wrote it
        raise RuntimeError("row vanished inside its own transaction")
    return row


def not_found(what: str) -> Problem:
    return Problem(404, f"no such {what}", code="not_found")


def _body(d: Destination | None) -> DestinationBody | None:
    return DestinationBody(kind=d.kind.value, ref=d.ref) if d is not None else None


def ivr_record(r: asyncpg.Record) -> Ivr:
    options = {k: DestinationBody(kind=v["kind"], ref=v.get("ref", "")) for k, v in json.loads(r["options"]).items()}
    return Ivr(id=r["id"], tenant_id=r["tenant_id"], name=r["name"],
               prompt=Prompt(kind=r["prompt_kind"], ref=r["prompt_ref"]),
               timeout_seconds=r["timeout_seconds"], max_attempts=r["max_attempts"],
               dial_by_extension=r["dial_by_extension"], options=options,
               timeout_destination=DestinationBody(kind=r["timeout_kind"], ref=r["timeout_ref"]),
               invalid_destination=DestinationBody(kind=r["invalid_kind"], ref=r["invalid_ref"]),
               created_at=r["created_at"], updated_at=r["updated_at"])


def tc_record(r: asyncpg.Record, timezone: str) -> TimeCondition:
    return TimeCondition(id=r["id"], tenant_id=r["tenant_id"], name=r["name"], timezone=timezone,
                         hours=msgspec.convert(json.loads(r["hours"]), list[HoursBody]),
                         holidays=json.loads(r["holidays"]),
                         override=r["override"],
                         open_destination=DestinationBody(kind=r["open_kind"], ref=r["open_ref"]),
                         closed_destination=DestinationBody(kind=r["closed_kind"], ref=r["closed_ref"]),
                         created_at=r["created_at"], updated_at=r["updated_at"])


class FlowServices:
    def __init__(self, pool: asyncpg.Pool, destinations: Callable[[], Destinations | None],
                 changed: Notice[TenantFlowsChanged], media: Callable[[], MediaStore | None] = lambda: None) -> None:
        self.pool = pool
        self._destinations = destinations
        self._changed = changed
        self._media = media

    @property
    def destinations(self) -> Destinations:
        d = self._destinations()
        if d is None:
            raise Problem(503, "call flows are not available", code="unavailable")
        return d

    async def _tenant(self, conn: store.Conn, partner_id: str, tenant_id: str) -> asyncpg.Record:
        row = await store.tenant(conn, partner_id, tenant_id)
        if row is None:
            raise not_found("tenant")
        return row

    async def _event(self, conn: store.Conn, kind: str, partner_id: str, tenant_id: str,
                     data: dict[str, Any], action: str, resource: str, rid: str, after: object) -> None:
        await emit(conn, kind, partner_id=partner_id, tenant_id=tenant_id, data=data)
        await audit.record(conn, action=action, resource=resource, resource_id=rid, partner_id=partner_id,
                           tenant_id=tenant_id, after=after)

    # ------------------------------------------------------------ IVR menus

    async def save_ivr(self, partner_id: str, tenant_id: str, body: IvrBody, ivr_id: str | None = None) -> Ivr:
        targets, errors = check_ivr(body)
        if errors:
            raise invalid(errors)
        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            if ivr_id is not None and await store.get_ivr(conn, tenant_id, ivr_id, lock=True) is None:
                raise not_found("IVR")
            rid = ivr_id or str(uuid.uuid4())
            row = {"id": rid, "tenant_id": tenant_id, "name": body.name, "prompt_kind": body.prompt.kind,
                   "prompt_ref": body.prompt.ref, "timeout_seconds": body.timeout_seconds,
                   "max_attempts": body.max_attempts, "dial_by_extension": body.dial_by_extension,
                   "options": {k[len("options."):]: {"kind": d.kind.value, "ref": d.ref}
                               for k, d in targets.items() if k.startswith("options.")},
                   "timeout_kind": targets["timeout_destination"].kind.value,
                   "timeout_ref": targets["timeout_destination"].ref,
                   "invalid_kind": targets["invalid_destination"].kind.value,
                   "invalid_ref": targets["invalid_destination"].ref}
            await (store.insert_ivr if ivr_id is None else store.update_ivr)(conn, row)
            # After the row exists, so a nested menu may point back at this one.
            await self.destinations.bind(pooled(conn), tenant_id, Destination(DestinationKind.IVR, rid),
                                         targets)
            ivr = ivr_record(_found(await store.get_ivr(conn, tenant_id, rid)))
            kind = "ivr.created" if ivr_id is None else "ivr.updated"
            await self._event(conn, kind, partner_id, tenant_id, {"id": rid, "name": body.name},
                              "create" if ivr_id is None else "update", "ivr", rid, ivr)
        self._changed.send(TenantFlowsChanged(tenant_id))
        return ivr

    async def get_ivr(self, partner_id: str, tenant_id: str, ivr_id: str) -> Ivr:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            row = await store.get_ivr(conn, tenant_id, ivr_id)
        if row is None:
            raise not_found("IVR")
        return ivr_record(row)

    async def list_ivrs(self, partner_id: str, tenant_id: str) -> list[Ivr]:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            return [ivr_record(r) for r in await store.list_ivrs(conn, [tenant_id])]

    async def _delete(self, partner_id: str, tenant_id: str, target: Destination, what: str) -> None:
        get = store.get_ivr if target.kind is DestinationKind.IVR else store.get_time_condition
        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            if await get(conn, tenant_id, target.ref, lock=True) is None:
                raise not_found(what)
            await release(self.destinations, conn, tenant_id, target)
            if target.kind is DestinationKind.IVR:
                await store.delete_ivr(conn, tenant_id, target.ref)
            else:
                await store.delete_time_condition(conn, tenant_id, target.ref)
            await self._event(conn, f"{target.kind.value}.deleted", partner_id, tenant_id, {"id": target.ref},
                              "delete", target.kind.value, target.ref, None)
        self._changed.send(TenantFlowsChanged(tenant_id))

    async def delete_ivr(self, partner_id: str, tenant_id: str, ivr_id: str) -> None:
        await self._delete(partner_id, tenant_id, Destination(DestinationKind.IVR, ivr_id), "IVR")

    async def upload_prompt(self, partner_id: str, tenant_id: str, name: str, data: bytes) -> dict[str, Any]:
        """Store an IVR prompt (validated and converted to 8 kHz mono 16-bit WAV); menus that
        name it play the new audio from their next call, so their tenant is re-rendered."""
        media = self._media()
        if media is None:
            raise Problem(503, "no media store is configured", code="unavailable")
        if not _PROMPT_NAME.fullmatch(name):
            raise invalid({"name": "a prompt name: [0-9a-z-], up to 63"})
        audio = normalize(data, max_bytes=PROMPT_MAX_BYTES, max_seconds=PROMPT_MAX_SECONDS, field="body")
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
        await media.put(MediaKey(tenant_id, MediaKind.PROMPT, name), audio)
        self._changed.send(TenantFlowsChanged(tenant_id))
        return {"name": name, "bytes": len(audio)}

    # ------------------------------------------------------------ time conditions

    async def save_time_condition(self, partner_id: str, tenant_id: str, body: TimeConditionBody,
                                  tc_id: str | None = None) -> TimeCondition:
        targets, errors = check_time_condition(body)
        if errors:
            raise invalid(errors)
        async with self.pool.acquire() as conn, conn.transaction():
            tenant = await self._tenant(conn, partner_id, tenant_id)
            if tc_id is not None and await store.get_time_condition(conn, tenant_id, tc_id, lock=True) is None:
                raise not_found("time condition")
            rid = tc_id or str(uuid.uuid4())
            await store.upsert_time_condition(conn, {
                "id": rid, "tenant_id": tenant_id, "name": body.name,
                "hours": [{"days": h.days, "start": h.start, "end": h.end} for h in body.hours],
                "holidays": body.holidays, "override": body.override,
                "open_kind": targets["open_destination"].kind.value, "open_ref": targets["open_destination"].ref,
                "closed_kind": targets["closed_destination"].kind.value,
                "closed_ref": targets["closed_destination"].ref})
            await self.destinations.bind(pooled(conn), tenant_id,
                                         Destination(DestinationKind.TIME_CONDITION, rid), targets)
            tc = tc_record(_found(await store.get_time_condition(conn, tenant_id, rid)), tenant["timezone"])
            kind = "time_condition.created" if tc_id is None else "time_condition.updated"
            await self._event(conn, kind, partner_id, tenant_id, {"id": rid, "override": body.override},
                              "create" if tc_id is None else "update", "time_condition", rid, tc)
        self._changed.send(TenantFlowsChanged(tenant_id))
        return tc

    async def get_time_condition(self, partner_id: str, tenant_id: str, tc_id: str) -> TimeCondition:
        async with self.pool.acquire() as conn:
            tenant = await self._tenant(conn, partner_id, tenant_id)
            row = await store.get_time_condition(conn, tenant_id, tc_id)
        if row is None:
            raise not_found("time condition")
        return tc_record(row, tenant["timezone"])

    async def list_time_conditions(self, partner_id: str, tenant_id: str) -> list[TimeCondition]:
        async with self.pool.acquire() as conn:
            tenant = await self._tenant(conn, partner_id, tenant_id)
            return [tc_record(r, tenant["timezone"]) for r in await store.list_time_conditions(conn, [tenant_id])]

    async def delete_time_condition(self, partner_id: str, tenant_id: str, tc_id: str) -> None:
        await self._delete(partner_id, tenant_id, Destination(DestinationKind.TIME_CONDITION, tc_id),
                           "time condition")

    # ------------------------------------------------------------ DIDs and the unassigned behaviour

    def _route_target(self, body: RouteBody, field: str) -> dict[str, Destination]:
        if body.destination is None:
            return {}
        errors: dict[str, str] = {}
        d = destination(body.destination, field, errors)
        if errors or d is None:
            raise invalid(errors)
        return {field: d}

    async def route_did(self, partner_id: str, tenant_id: str, did_id: str, body: RouteBody) -> DidRoute:
        targets = self._route_target(body, "destination")
        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            did = await store.did(conn, tenant_id, did_id)
            if did is None:
                raise not_found("DID")
            owner = Destination(DestinationKind.DID, did["number"])
            await self.destinations.bind(pooled(conn), tenant_id, owner, targets)
            target = targets.get("destination")
            await store.set_did_route(conn, tenant_id, did_id, target.kind.value if target else None,
                                      target.ref if target else "")
            route = DidRoute(did_id=did_id, number=did["number"], destination=_body(target))
            await self._event(conn, "phone_number.routed", partner_id, tenant_id,
                              {"id": did_id, "number": did["number"],
                               "destination": msgspec_dict(route.destination)}, "update", "did_route", did_id, route)
        self._changed.send(TenantFlowsChanged(tenant_id))
        return route

    async def settings(self, partner_id: str, tenant_id: str) -> FlowSettings:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            row = await store.settings(conn, tenant_id)
        d = (Destination(DestinationKind(row["unassigned_kind"]), row["unassigned_ref"])
             if row is not None and row["unassigned_kind"] else None)
        return FlowSettings(tenant_id=tenant_id, unassigned_destination=_body(d))

    async def set_unassigned(self, partner_id: str, tenant_id: str, body: RouteBody) -> FlowSettings:
        targets = self._route_target(body, "unassigned_destination")
        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            await self.destinations.bind(pooled(conn), tenant_id, Destination(DestinationKind.DID), targets)
            target = targets.get("unassigned_destination")
            await store.set_unassigned(conn, tenant_id, target.kind.value if target else None,
                                       target.ref if target else "")
            result = FlowSettings(tenant_id=tenant_id, unassigned_destination=_body(target))
            await audit.record(conn, action="update", resource="flow_settings", resource_id=tenant_id,
                               partner_id=partner_id, tenant_id=tenant_id, after=result)
        self._changed.send(TenantFlowsChanged(tenant_id))
        return result


def msgspec_dict(body: DestinationBody | None) -> dict[str, str] | None:
    return {"kind": body.kind, "ref": body.ref} if body is not None else None
