"""Follows calls through Asterisk's events.

For now it records which channels the daemon has seen come and go, with the
call id bound to each log line; call records are built on top of it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from controlplane.asterisk.events import (
    AmiEvent,
    AriEvent,
    ChannelCreated,
    ChannelDestroyed,
    Hangup,
    Newchannel,
    StasisEnd,
    StasisStart,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Sighting:
    """One channel event as the daemon saw it."""

    source: str  # "ari" or "ami"
    event: str
    channel_id: str
    call_id: str  # the linkedid where known, else the channel id
    exten: str
    at: datetime


class CallTracker:
    def __init__(self, keep: int = 1000) -> None:
        self._recent: deque[Sighting] = deque(maxlen=keep)

    def recent(self) -> list[Sighting]:
        return list(self._recent)

    async def on_ari(self, event: AriEvent) -> None:
        if isinstance(event, StasisStart | StasisEnd | ChannelCreated | ChannelDestroyed):
            channel = event.channel
            self._see("ari", event.type, channel.id, channel.id, channel.dialplan.exten)

    def on_ami(self, event: AmiEvent) -> None:
        if isinstance(event, Newchannel | Hangup):
            self._see("ami", event.event, event.uniqueid, event.linkedid or event.uniqueid, event.exten)

    def _see(self, source: str, name: str, channel_id: str, call_id: str, exten: str) -> None:
        self._recent.append(Sighting(source, name, channel_id, call_id, exten, datetime.now(UTC)))
        log.info("call.event", source=source, kind=name, call_id=call_id, channel_id=channel_id,
                 exten=exten)
