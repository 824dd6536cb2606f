"""The media-store port: tenant audio that Asterisk plays or records (prompts, music on
hold, greetings, voicemail messages, call recordings).

Owned by the voicemail/recording capability (``controlplane.recordings``), which sets
``Context.media``; the other call-flow capabilities store and name their audio through
it. The local implementation is a directory Asterisk also sees; object storage for a
multi-node deployment is another implementation of the same port.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

__all__ = ["MediaKey", "MediaKind", "MediaStore"]


class MediaKind(StrEnum):
    PROMPT = "prompt"
    MOH = "moh"
    GREETING = "greeting"
    VOICEMAIL = "voicemail"
    RECORDING = "recording"


@dataclass(frozen=True, slots=True)
class MediaKey:
    """One stored file: the tenant it belongs to, its kind and a name of ``[0-9a-z-]``."""

    tenant_id: str
    kind: MediaKind
    name: str


class MediaStore(Protocol):
    async def put(self, key: MediaKey, data: bytes) -> None:
        """Store ``data`` (normalised audio) under ``key``, replacing any previous file."""
        ...

    async def get(self, key: MediaKey) -> bytes | None: ...

    async def delete(self, key: MediaKey) -> None: ...

    async def purge_tenant(self, tenant_id: str) -> int:
        """Delete every file of the tenant (data deletion); the number deleted."""
        ...

    def playback_name(self, key: MediaKey) -> str:
        """What ``Playback``/``Background`` take for this file (a path without extension,
        as Asterisk sees it): safe for the dialplan (no ``,;[]`` or newline)."""
        ...
