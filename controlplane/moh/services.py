"""Music on hold per tenant: uploads validated and normalised (controlplane.shared.audio),
stored through the media store (``context.media``), listed in the realtime views Asterisk
plays the tenant's class from. Nothing to reload: the class is read at each hold."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import structlog

from controlplane.moh import store
from controlplane.moh.models import MAX_FILES, MohClass, MohFile, check_file_name, tenant_class
from controlplane.ring_groups import store as tenants_of
from controlplane.shared.audio import normalize, read_wav
from controlplane.shared.media import MediaKey, MediaKind, MediaStore
from controlplane.shared.problems import Problem

log = structlog.get_logger(__name__)
_UNSAFE = re.compile(r"[\n\r;,\[\]]")


def _not_found(what: str) -> Problem:
    return Problem(404, f"no such {what}", code="not_found")


class MohServices:
    def __init__(self, pool: asyncpg.Pool, media: Callable[[], MediaStore | None], *, max_bytes: int,
                 max_seconds: float) -> None:
        self.pool = pool
        self._media = media  # read at request time: the recordings plugin sets it
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds

    def media(self) -> MediaStore:
        found = self._media()
        if found is None:
            raise Problem(503, "media storage is not available", code="media_unavailable")
        return found

    async def _prefix(self, conn: store.Conn, partner_id: str, tenant_id: str) -> str:
        prefix = await tenants_of.tenant_prefix(conn, partner_id, tenant_id)
        if prefix is None:
            raise _not_found("tenant")
        return prefix

    async def get(self, partner_id: str, tenant_id: str) -> MohClass:
        async with self.pool.acquire() as conn:
            prefix = await self._prefix(conn, partner_id, tenant_id)
            files = await store.files(conn, tenant_id)
        return MohClass(tenant_id=tenant_id, moh_class=tenant_class(prefix), files=files)

    async def put(self, partner_id: str, tenant_id: str, name: str, data: bytes) -> MohFile:
        errors = check_file_name(name)
        if errors:
            raise Problem(422, errors["name"], field="name", code="invalid_request")
        async with self.pool.acquire() as conn:
            await self._prefix(conn, partner_id, tenant_id)
            if await store.count(conn, tenant_id) >= MAX_FILES:
                raise Problem(409, f"at most {MAX_FILES} music on hold files per tenant", code="too_many_files")
        audio = normalize(data, max_bytes=self.max_bytes, max_seconds=self.max_seconds)  # 422 naming "audio"
        seconds = read_wav(audio).seconds
        media = self.media()
        key = MediaKey(tenant_id, MediaKind.MOH, name)
        entry = media.playback_name(key)
        if _UNSAFE.search(entry):  # the media store promises this; the realtime row must never break
            raise Problem(500, "media store gave an unsafe playback name", code="internal")
        await media.put(key, audio)
        async with self.pool.acquire() as conn, conn.transaction():
            saved = await store.upsert(conn, tenant_id, name, entry, len(audio), seconds, datetime.now(UTC))
        log.info("moh.file_stored", tenant_id=tenant_id, name=name, bytes=len(audio), seconds=round(seconds, 1))
        return saved

    async def delete(self, partner_id: str, tenant_id: str, name: str) -> None:
        if check_file_name(name):
            raise _not_found("music on hold file")
        async with self.pool.acquire() as conn, conn.transaction():
            await self._prefix(conn, partner_id, tenant_id)
            if not await store.delete(conn, tenant_id, name):
                raise _not_found("music on hold file")
        await self.media().delete(MediaKey(tenant_id, MediaKind.MOH, name))
        log.info("moh.file_deleted", tenant_id=tenant_id, name=name)
