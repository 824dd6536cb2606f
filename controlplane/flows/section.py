"""The flows capability's own ``FlowSection``: IVR menus, time conditions, and the lines no other
capability owns (external numbers, hangup, DID entries, the unassigned-DID behaviour)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date

import asyncpg

from controlplane.destinations import FlowSection
from controlplane.flows import store
from controlplane.shared.media import MediaKey, MediaKind, MediaStore
from controlplane.voicemail.render import RecordingScope, recording_hook
from provisioning.destinations import Destination, DestinationKind
from provisioning.flows import DidEntry, HoursRange, IvrMenu, TenantFlows, TimeCondition, render_tenant_flows

OWN_KINDS = frozenset({DestinationKind.IVR, DestinationKind.TIME_CONDITION})
_TABLE = {DestinationKind.IVR: "ivr_menus", DestinationKind.TIME_CONDITION: "time_conditions"}


def _dest(kind: str | None, ref: str | None) -> Destination | None:
    return Destination(DestinationKind(kind), ref or "") if kind else None


def ivr_from(row: asyncpg.Record, media: MediaStore | None, extensions: Sequence[str] = ()) -> IvrMenu:
    prompt = row["prompt_ref"]
    if row["prompt_kind"] == "upload":
        prompt = (media.playback_name(MediaKey(row["tenant_id"], MediaKind.PROMPT, prompt)) if media is not None
                  else "demo-congrats")  # no media store installed: a built-in sound, never a broken path
    options = {k: Destination(DestinationKind(v["kind"]), v.get("ref", "")) for k, v in json.loads(row["options"]).items()}
    return IvrMenu(row["id"], prompt, row["timeout_seconds"], row["max_attempts"], row["dial_by_extension"],
                   options, Destination(DestinationKind(row["timeout_kind"]), row["timeout_ref"]),
                   Destination(DestinationKind(row["invalid_kind"]), row["invalid_ref"]),
                   tuple(extensions) if row["dial_by_extension"] else ())


def time_condition_from(row: asyncpg.Record, timezone: str) -> TimeCondition:
    hours = tuple(HoursRange(tuple(h["days"]), h["start"], h["end"]) for h in json.loads(row["hours"]))
    holidays = tuple(date.fromisoformat(d) for d in json.loads(row["holidays"]))
    return TimeCondition(row["id"], timezone, hours, holidays, row["override"],
                         Destination(DestinationKind(row["open_kind"]), row["open_ref"]),
                         Destination(DestinationKind(row["closed_kind"]), row["closed_ref"]))


class FlowsSection:
    """Renders every tenant's share of the flows context that belongs to this capability."""

    def __init__(self, sections: Sequence[FlowSection], media: Callable[[], MediaStore | None]) -> None:
        self._sections = sections
        self._media = media  # Context.media, read at render time (the recordings plugin installs later)

    @property
    def kinds(self) -> frozenset[DestinationKind]:
        return OWN_KINDS

    async def exists(self, conn: asyncpg.Connection, tenant_id: str, destination: Destination) -> bool:
        table = _TABLE.get(destination.kind)
        return table is not None and await store.exists(conn, table, tenant_id, destination.ref)

    def _extensions_owned_elsewhere(self) -> bool:
        return any(DestinationKind.EXTENSION in s.kinds for s in self._sections if s is not self)

    async def render(self, conn: asyncpg.Connection, tenant_ids: Sequence[str]) -> Mapping[str, Sequence[str]]:
        tenants = await store.render_tenants(conn, tenant_ids)
        ids = [t["id"] for t in tenants]
        media = self._media()
        numbers: dict[str, list[str]] = {}
        for row in await store.render_extensions(conn, ids):
            numbers.setdefault(row["tenant_id"], []).append(row["number"])
        ivrs: dict[str, list[IvrMenu]] = {}
        for row in await store.list_ivrs(conn, ids):
            ivrs.setdefault(row["tenant_id"], []).append(ivr_from(row, media, numbers.get(row["tenant_id"], ())))
        zone = {t["id"]: t["timezone"] for t in tenants}
        tcs: dict[str, list[TimeCondition]] = {}
        for row in await store.list_time_conditions(conn, ids):
            tcs.setdefault(row["tenant_id"], []).append(time_condition_from(row, zone[row["tenant_id"]]))
        dids: dict[str, list[DidEntry]] = {}
        for row in await store.render_dids(conn, ids):
            target = _dest(row["target_kind"], row["target_ref"])
            if target is None and row["extension"]:
                target = Destination(DestinationKind.EXTENSION, row["extension"])  # the DID's old assignment
            dids.setdefault(row["tenant_id"], []).append(DidEntry(row["number"], target))
        externals: dict[str, set[str]] = {}
        for row in await store.render_externals(conn, ids):
            externals.setdefault(row["tenant_id"], set()).add(row["target_ref"])
        fallback = {} if self._extensions_owned_elsewhere() else numbers
        out: dict[str, Sequence[str]] = {}
        for t in tenants:
            tid, prefix = t["id"], t["sip_prefix"]
            # Every DID entry runs the recordings capability's hook (a no-op without a policy),
            # so setting or dropping a DID's policy never needs this section re-rendered.
            entries = [DidEntry(d.number, d.destination, recording_hook(prefix, RecordingScope.DID, d.number))
                       for d in dids.get(tid, ())]
            out[tid] = render_tenant_flows(TenantFlows(
                prefix=prefix, ivrs=ivrs.get(tid, ()), time_conditions=tcs.get(tid, ()),
                dids=entries, unassigned=_dest(t["unassigned_kind"], t["unassigned_ref"]),
                externals=frozenset(externals.get(tid, ())), extension_fallback=fallback.get(tid, ())))
        return out
