"""Follows calls through Asterisk's events.

Records which channels the daemon has seen come and go (``recent``), and feeds
AMI events through the pure call flow (``cdr_ingest.callflow``); the actions it
returns go to the sink the calls plugin attaches (buffered until then). The calls
plugin owns it and subscribes it to the Asterisk event streams (``Context``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from cdr_ingest.callflow import Action, CallFlow, FlowConfig, Input
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
from controlplane.calls.ami_inputs import to_input

log = structlog.get_logger(__name__)
Sink = Callable[[list[Action]], None]


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
    def __init__(self, keep: int = 1000, flow: FlowConfig = FlowConfig()) -> None:
        self._recent: deque[Sighting] = deque(maxlen=keep)
        self.flow = CallFlow(flow)
        self._sink: Sink | None = None
        self._pending: list[Action] = []

    def attach(self, sink: Sink, flow: FlowConfig | None = None) -> None:
        """Send actions to ``sink`` from now on (and those buffered so far)."""
        if flow is not None and flow != self.flow.config and not len(self.flow):
            self.flow = CallFlow(flow)
        self._sink = sink
        pending, self._pending = self._pending, []
        if pending:
            sink(pending)

    def feed(self, event: Input) -> None:
        actions = self.flow.feed(event)
        if not actions:
            return
        if self._sink is None:
            self._pending.extend(actions)
        else:
            self._sink(actions)

    def recent(self) -> list[Sighting]:
        return list(self._recent)

    async def on_ari(self, event: AriEvent) -> None:
        if isinstance(event, StasisStart | StasisEnd | ChannelCreated | ChannelDestroyed):
            channel = event.channel
            self._see("ari", event.type, channel.id, channel.id, channel.dialplan.exten)

    def on_ami(self, event: AmiEvent) -> None:
        if isinstance(event, Newchannel | Hangup):
            self._see("ami", event.event, event.uniqueid, event.linkedid or event.uniqueid, event.exten)
        flow_input = to_input(event, datetime.now(UTC))
        if flow_input is not None:
            self.feed(flow_input)

    def _see(self, source: str, name: str, channel_id: str, call_id: str, exten: str) -> None:
        self._recent.append(Sighting(source, name, channel_id, call_id, exten, datetime.now(UTC)))
        log.debug("call.event", source=source, kind=name, call_id=call_id, channel_id=channel_id,
                 exten=exten)
