"""The voicemail capability's ``FlowSection``: destinations ``extension`` and ``voicemail``, and
its lines of each tenant's flows context (controlplane.voicemail.render)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import asyncpg

from controlplane.recordings import store as recordings_store
from controlplane.shared.media import MediaKey, MediaKind, MediaStore
from controlplane.voicemail import store
from controlplane.voicemail.render import TenantSection, lines
from provisioning.destinations import Destination, DestinationKind


def recording_dir(media: MediaStore, tenant_id: str) -> str:
    """The tenant's recordings directory as Asterisk sees it (what MixMonitor writes into)."""
    return media.playback_name(MediaKey(tenant_id, MediaKind.RECORDING, "x")).rsplit("/", 1)[0]


class VoicemailSection:
    """Renders ``ext-*``, ``ring-*``, ``vm-*``, ``vmmain`` and the recording subroutines."""

    def __init__(self, media: Callable[[], MediaStore | None], on_render: Callable[[str], None] | None = None
                 ) -> None:
        self._media = media
        self._on_render = on_render  # tenant id: make sure its recordings directory exists

    @property
    def kinds(self) -> frozenset[DestinationKind]:
        return frozenset({DestinationKind.EXTENSION, DestinationKind.VOICEMAIL})

    async def exists(self, conn: asyncpg.Connection, tenant_id: str, destination: Destination) -> bool:
        if destination.kind is DestinationKind.EXTENSION:
            return await store.extension_exists(conn, tenant_id, destination.ref)
        if destination.kind is DestinationKind.VOICEMAIL:
            return await store.enabled_box_exists(conn, tenant_id, destination.ref)
        return False

    async def render(self, conn: asyncpg.Connection, tenant_ids: Sequence[str]) -> Mapping[str, Sequence[str]]:
        media = self._media()
        if media is None:
            raise RuntimeError("the media store is not installed (the recordings plugin sets it)")
        rows = await conn.fetch("SELECT id, sip_prefix FROM tenants WHERE id = ANY($1::text[])"
                                " AND status <> 'CANCELLED'", list(tenant_ids))
        policies = await recordings_store.policies(conn, [r["id"] for r in rows])
        out: dict[str, Sequence[str]] = {}
        for row in rows:
            tenant_id = row["id"]
            if self._on_render is not None:
                self._on_render(tenant_id)
            out[tenant_id] = lines(TenantSection(tenant_id, row["sip_prefix"], recording_dir(media, tenant_id),
                                                 tuple(policies.get(tenant_id, ()))))
        return out
