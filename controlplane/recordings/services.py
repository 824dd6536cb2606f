"""Recording decisions: policies (validated, then the tenant's flows re-rendered), recordings
started by the dialplan (``UserEvent CpRecording``) measured once the call is recorded,
listing and download in the caller's scope, retention and the purge of deleted tenants' media."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from cdr_ingest.records import call_record_id
from controlplane.config import MediaConfig
from controlplane.destinations import FlowSection
from controlplane.recordings import store
from controlplane.shared.audio import AudioRejected, measure
from controlplane.shared.media import MediaKey, MediaKind, MediaStore
from controlplane.shared.problems import FieldError, Problem
from controlplane.signals import Notice, TenantFlowsChanged
from controlplane.voicemail.render import RecordingMode, RecordingScope, ScopedPolicy
from provisioning.destinations import Destination, DestinationKind

log = structlog.get_logger(__name__)
FINISH_TRIES = 5  # MixMonitor closes its file just after the channel hangs up
FINISH_WAIT = 1.0
ABANDON_AFTER = timedelta(hours=6)  # a recording never measured by then had no call record


def recording_key(tenant_id: str, name: str) -> MediaKey:
    return MediaKey(tenant_id, MediaKind.RECORDING, name)


def invalid(errors: dict[str, str]) -> Problem:
    return Problem(422, "invalid recording policy", code="invalid_request",
                   errors=[FieldError(f, m) for f, m in errors.items()])


class RecordingServices:
    def __init__(self, pool: asyncpg.Pool, media: Callable[[], MediaStore | None],
                 sections: Sequence[FlowSection], flows_changed: Notice[TenantFlowsChanged],
                 config: MediaConfig) -> None:
        self.pool = pool
        self._media = media
        self.sections = sections  # existence of extensions and queues: their owners answer
        self.flows_changed = flows_changed
        self.config = config
        self._pending: set[asyncio.Task[None]] = set()

    def media(self) -> MediaStore:
        found = self._media()
        if found is None:
            raise Problem(503, "the media store is not available", code="media_unavailable")
        return found

    async def _tenant(self, conn: store.Conn, partner_id: str, tenant_id: str) -> None:
        if await store.tenant_partner(conn, partner_id, tenant_id) is None:
            raise Problem(404, "no such tenant", code="not_found")

    # ---------------------------------------------------------------- policies

    async def list_policies(self, partner_id: str, tenant_id: str) -> list[ScopedPolicy]:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            return (await store.policies(conn, [tenant_id])).get(tenant_id, [])

    async def _exists(self, conn: store.Conn, tenant_id: str, scope: RecordingScope, ref: str) -> bool:
        if scope is RecordingScope.DID:
            return await store.did_of_tenant(conn, tenant_id, ref)
        kind = DestinationKind.EXTENSION if scope is RecordingScope.EXTENSION else DestinationKind.QUEUE
        for section in self.sections:
            if kind in section.kinds:
                return await section.exists(conn, tenant_id, Destination(kind, ref))  # type: ignore[arg-type]
        return False

    async def put_policy(self, partner_id: str, tenant_id: str, scope: str, ref: str, mode: str) -> ScopedPolicy:
        errors: dict[str, str] = {}
        try:
            parsed_scope = RecordingScope(scope)
        except ValueError:
            raise Problem(404, "no such recording scope (extension, did or queue)", code="not_found") from None
        if not parsed_scope.ref_ok(ref):
            errors["ref"] = {RecordingScope.EXTENSION: "an extension number (2-6 digits)",
                             RecordingScope.DID: "an E.164 number (+ and 7-15 digits)",
                             RecordingScope.QUEUE: "a queue id"}[parsed_scope]
        if mode not in {m.value for m in RecordingMode}:
            errors["mode"] = "one of always, never, on_demand"
        if errors:
            raise invalid(errors)
        policy = ScopedPolicy(parsed_scope, ref, RecordingMode(mode))
        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            if not await self._exists(conn, tenant_id, parsed_scope, ref):
                raise invalid({"ref": f"no {parsed_scope.value} {ref} in this tenant"})
            await store.put_policy(conn, tenant_id, policy)
        self.flows_changed.send(TenantFlowsChanged(tenant_id))
        return policy

    async def delete_policy(self, partner_id: str, tenant_id: str, scope: str, ref: str) -> None:
        try:
            parsed = RecordingScope(scope)
        except ValueError:
            raise Problem(404, "no such recording policy", code="not_found") from None
        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            if not await store.delete_policy(conn, tenant_id, parsed, ref):
                raise Problem(404, "no such recording policy", code="not_found")
        self.flows_changed.send(TenantFlowsChanged(tenant_id))

    # ---------------------------------------------------------------- recordings from the dialplan

    async def started(self, tenant_id: str, linkedid: str, name: str, scope: str, ref: str) -> None:
        async with self.pool.acquire() as conn:
            inserted = await store.insert_recording(
                conn, recording_id=str(uuid.uuid4()), tenant_id=tenant_id, linkedid=linkedid, uniqueid=name,
                scope=scope, ref=ref, started_at=datetime.now(UTC))
        log.info("recordings.started", tenant_id=tenant_id, linkedid=linkedid, name=name, new=inserted)

    def call_recorded(self, linkedid: str) -> None:
        """The call's record is written: measure its recordings (on a task: a sync signal)."""
        task = asyncio.get_running_loop().create_task(self.finish_call(linkedid))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def finish_call(self, linkedid: str) -> None:
        for attempt in range(FINISH_TRIES):
            async with self.pool.acquire() as conn:
                rows = await store.unfinished(conn, linkedid=linkedid)
            if not rows:
                return
            left = [r for r in rows if not await self._measure(r, final=attempt == FINISH_TRIES - 1)]
            if not left:
                return
            await asyncio.sleep(FINISH_WAIT * (attempt + 1))

    async def _measure(self, row: asyncpg.Record, *, final: bool) -> bool:
        """True when the recording is settled (measured, or dropped for want of audio)."""
        media = self.media()
        key = recording_key(row["tenant_id"], row["uniqueid"])
        data = await media.get(key)
        try:
            stats = measure(data) if data else None
        except AudioRejected:
            stats = None
        async with self.pool.acquire() as conn:
            if stats is not None and stats.seconds > 0:
                await store.finish(conn, row["id"], stats.seconds, len(data or b""))
                log.info("recordings.finished", recording_id=row["id"], seconds=round(stats.seconds, 2))
                return True
            if final:  # never bridged (MixMonitor b) or on-demand never started: nothing to keep
                await store.drop(conn, [row["id"]])
                await media.delete(key)
                return True
        return False

    async def sweep(self) -> None:
        """Recordings no call record settled, past retention; media of purged tenants."""
        async with self.pool.acquire() as conn:
            stale = await store.unfinished(conn, older_than=datetime.now(UTC) - ABANDON_AFTER)
        for row in stale:
            await self._measure(row, final=True)
        async with self.pool.acquire() as conn:
            expired = await store.expired(conn, self.config.recording_retention_days)
            if expired:
                await store.drop(conn, [r for _, r, _ in expired])
            tenants = await store.tenant_ids(conn)
        media = self.media()
        for tenant_id, _, name in expired:
            await media.delete(recording_key(tenant_id, name))
        if expired:
            log.info("recordings.expired", count=len(expired))
        await self._purge_orphans(media, tenants)

    async def _purge_orphans(self, media: MediaStore, tenants: set[str]) -> None:
        listed = getattr(media, "tenant_dirs", None)
        if listed is None:
            return
        for tenant_id in await listed():
            if tenant_id not in tenants:
                count = await media.purge_tenant(tenant_id)
                log.info("media.tenant_purged", tenant_id=tenant_id, files=count)

    # ---------------------------------------------------------------- reading

    async def list(self, partner_id: str, tenant_id: str, call_id: str | None, limit: int,
                   before: tuple[datetime, str] | None) -> tuple[list[store.RecordingRow], bool]:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            linkedid = None
            if call_id is not None:
                linkedid = await store.linkedid_of_call(conn, tenant_id, call_id)
                if linkedid is None:
                    return [], False
            rows = await store.list_recordings(conn, tenant_id, linkedid, limit + 1, before, call_record_id)
        return rows[:limit], len(rows) > limit

    async def get(self, partner_id: str, tenant_id: str, recording_id: str) -> store.RecordingRow:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            row = await store.get_recording(conn, tenant_id, recording_id, call_record_id)
        if row is None:
            raise Problem(404, "no such recording", code="not_found")
        return row

    async def audio(self, partner_id: str, tenant_id: str, recording_id: str) -> bytes:
        row = await self.get(partner_id, tenant_id, recording_id)
        data = await self.media().get(recording_key(tenant_id, row.uniqueid))
        if data is None:
            raise Problem(404, "no such recording audio", code="not_found")
        return data

    # ---------------------------------------------------------------- retention

    async def retention(self, partner_id: str, tenant_id: str) -> tuple[int, int]:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            found = await store.get_retention(conn, tenant_id)
        return found or (self.config.voicemail_retention_days, self.config.recording_retention_days)

    async def put_retention(self, partner_id: str, tenant_id: str, voicemail_days: int, recording_days: int
                            ) -> tuple[int, int]:
        errors = {f: "whole days from 1 to 3650" for f, v in (("voicemail_days", voicemail_days),
                                                                ("recording_days", recording_days))
                  if not 1 <= v <= 3650}
        if errors:
            raise Problem(422, "invalid retention", code="invalid_request",
                          errors=[FieldError(f, m) for f, m in errors.items()])
        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            await store.put_retention(conn, tenant_id, voicemail_days, recording_days)
        return voicemail_days, recording_days
