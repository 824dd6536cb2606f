"""The call state machine: channel events in, call progress and finished calls out.

Pure and deterministic (no clock, no I/O): every input carries its own time, so
replaying the same events gives the same actions. One call is one Asterisk
``linkedid``; it ends when its last channel is gone. The adapter that turns AMI
events into these inputs is ``controlplane.calls.ami_inputs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = [
    "ChannelOpened", "ChannelUp", "TenantTagged", "DialStarted", "DialEnded", "ChannelClosed",
    "CallResumed", "Input", "Progress", "ProgressKind", "CallSummary", "Finished", "Action",
    "FlowConfig", "CallFlow",
]


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class ChannelOpened:
    at: datetime
    call_id: str  # linkedid
    channel_id: str  # uniqueid
    name: str  # e.g. PJSIP/acme_101-00000001
    context: str
    exten: str
    caller_num: str = ""
    tenant_id: str = ""  # the channel's accountcode, set by provisioning


@dataclass(frozen=True, slots=True)
class ChannelUp:
    at: datetime
    call_id: str
    channel_id: str


@dataclass(frozen=True, slots=True)
class TenantTagged:
    at: datetime
    call_id: str
    tenant_id: str


@dataclass(frozen=True, slots=True)
class DialStarted:
    at: datetime
    call_id: str
    dest_channel_id: str
    dest_name: str
    exten: str  # the caller's extension when it dialled
    caller_channel_id: str = ""  # the dialling channel's uniqueid ("": unknown)


@dataclass(frozen=True, slots=True)
class DialEnded:
    at: datetime
    call_id: str
    dest_channel_id: str
    status: str  # ANSWER, BUSY, NOANSWER, CANCEL, CONGESTION, CHANUNAVAIL


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    at: datetime
    call_id: str
    channel_id: str
    cause: int = 0


@dataclass(frozen=True, slots=True)
class CallResumed:
    """A call found in progress at (re)connect, with what was persisted about it."""

    at: datetime
    call_id: str
    channels: tuple[ChannelOpened, ...]
    up: bool
    started_at: datetime
    answered_at: datetime | None = None
    answered_sent: bool = False
    initiated_sent: bool = False
    # Persisted when the call started: the live channels may have moved on since
    # (an inbound call's first channel leaves from-carrier; its exten is then "s").
    inbound: bool | None = None
    dialed: str | None = None
    tenant_id: str = ""


Input = ChannelOpened | ChannelUp | TenantTagged | DialStarted | DialEnded | ChannelClosed | CallResumed


# ---------------------------------------------------------------- actions


class ProgressKind(StrEnum):
    INITIATED = "initiated"  # call.initiated / inbound_call.ringing
    ANSWERED = "answered"  # call.answered / inbound_call.answered


@dataclass(frozen=True, slots=True)
class Progress:
    kind: ProgressKind
    call_id: str
    tenant_id: str
    inbound: bool
    dialed: str
    caller_num: str
    started_at: datetime
    at: datetime


@dataclass(frozen=True, slots=True)
class CallSummary:
    """Everything the events told about one finished call; rating happens later."""

    call_id: str
    tenant_id: str
    inbound: bool
    trunk_used: bool
    dialed: str  # what the first channel dialled (the DID for inbound calls)
    caller_num: str
    caller_channel: str
    answered_by: str  # channel name of the answering leg, "" if none
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    dial_status: str
    hangup_cause: int
    late: bool = False
    # "": the call itself. Otherwise a carrier leg the call placed from inside the tenant's
    # flows (a ring group's external member, a forward: docs/queues.md), rated as an
    # outbound call of its own; the carrier channel's name, so both ingestion paths (AMI,
    # CDRs) key it alike.
    leg: str = ""


@dataclass(frozen=True, slots=True)
class Finished:
    summary: CallSummary


Action = Progress | Finished


# ---------------------------------------------------------------- machine


@dataclass(frozen=True, slots=True)
class FlowConfig:
    trunk: str = "carrier"  # PJSIP endpoint of the carrier trunk
    inbound_context: str = "from-carrier"


@dataclass(slots=True)
class _Leg:
    """A carrier channel that is a billed leg of its own (``CallSummary.leg``)."""

    channel_id: str
    name: str
    started_at: datetime
    dialed: str
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    status: str = ""
    cause: int = 0


@dataclass(slots=True)
class _Call:
    call_id: str
    started_at: datetime
    first: ChannelOpened
    tenant_id: str = ""
    inbound: bool = False
    live: set[str] = field(default_factory=set)
    answered_at: datetime | None = None
    answered_by: str = ""
    trunk_used: bool = False
    dial_status: str = ""
    cause: int = 0
    initiated_sent: bool = False
    answered_sent: bool = False
    names: dict[str, str] = field(default_factory=dict)
    # Carrier channels of an outbound call counted as its own trunk (dialled by the caller),
    # and the carrier channels that are legs of their own (the rest).
    main_trunk: set[str] = field(default_factory=set)
    legs: dict[str, _Leg] = field(default_factory=dict)


class CallFlow:
    """All calls in progress. ``feed`` returns the actions one input causes."""

    def __init__(self, config: FlowConfig = FlowConfig()) -> None:
        self.config = config
        self._calls: dict[str, _Call] = {}
        self._trunk_prefix = f"PJSIP/{config.trunk}-"

    def __len__(self) -> int:
        return len(self._calls)

    def live_call_ids(self) -> frozenset[str]:
        return frozenset(self._calls)

    def live_calls(self) -> list[tuple[bool, str]]:
        """(inbound, number dialled) of every call in progress (the metrics count them by class)."""
        return [(call.inbound, call.first.exten) for call in self._calls.values()]

    def feed(self, event: Input) -> list[Action]:
        call = self._calls.get(event.call_id)
        if isinstance(event, CallResumed):
            return self._resume(event) if call is None else []
        if isinstance(event, ChannelOpened):
            if call is None:
                call = self._open(event)
            call.live.add(event.channel_id)
            call.names[event.channel_id] = event.name
            if event.name.startswith(self._trunk_prefix) and event.channel_id != call.first.channel_id:
                self._trunk_channel(call, event)
            if event.tenant_id and not call.tenant_id:
                call.tenant_id = event.tenant_id
            return self._initiated(call, event.at)
        if call is None:
            return []  # a call that started before we were watching: the CDR reconciler has it
        if isinstance(event, TenantTagged):
            if not call.tenant_id:
                call.tenant_id = event.tenant_id
            return self._initiated(call, event.at)
        if isinstance(event, ChannelUp):
            leg = call.legs.get(event.channel_id)
            if leg is not None and leg.answered_at is None:
                leg.answered_at = event.at
            if event.channel_id == call.first.channel_id and call.answered_at is None:
                call.answered_at = event.at
                return self._answered(call, event.at)
            return []
        if isinstance(event, DialStarted):
            call.names[event.dest_channel_id] = event.dest_name
            if event.dest_name.startswith(self._trunk_prefix):
                self._trunk_dialled(call, event)
            return []
        if isinstance(event, DialEnded):
            leg = call.legs.get(event.dest_channel_id)
            if leg is not None:
                leg.status = event.status
                return []
            call.dial_status = event.status
            if event.status == "ANSWER":
                call.answered_by = call.names.get(event.dest_channel_id, call.answered_by)
            return []
        # ChannelClosed
        call.live.discard(event.channel_id)
        leg = call.legs.get(event.channel_id)
        if leg is not None:
            leg.ended_at, leg.cause = event.at, event.cause
        if event.channel_id == call.first.channel_id or not call.cause:
            call.cause = event.cause  # the caller's cause wins; else the first one seen
        if call.live:
            return []
        del self._calls[call.call_id]
        if not call.tenant_id:
            return []  # not a tenant's call (health checks, unassigned DIDs)
        finished: list[Action] = [Finished(self._summary(call, event.at))]
        return finished + [Finished(self._leg_summary(call, leg, event.at)) for leg in call.legs.values()]

    # ------------------------------------------------------------ internals

    def _trunk_channel(self, call: _Call, event: ChannelOpened) -> None:
        """A carrier channel opened in the call: an inbound call's is a leg of its own; an
        outbound call's is its own trunk until its Dial shows another channel dialled it."""
        if call.inbound:
            call.legs[event.channel_id] = _Leg(event.channel_id, event.name, event.at, event.exten)
        else:
            call.main_trunk.add(event.channel_id)
            call.trunk_used = True

    def _trunk_dialled(self, call: _Call, event: DialStarted) -> None:
        dest = event.dest_channel_id
        dialler = event.caller_channel_id
        own = not call.inbound and (not dialler or dialler == call.first.channel_id)
        if own:
            call.legs.pop(dest, None)
            call.main_trunk.add(dest)
        else:
            call.main_trunk.discard(dest)
            leg = call.legs.get(dest)
            if leg is None:
                leg = call.legs[dest] = _Leg(dest, event.dest_name, event.at, event.exten)
            leg.dialed = event.exten or leg.dialed
        call.trunk_used = bool(call.main_trunk)

    def _open(self, event: ChannelOpened) -> _Call:
        call = _Call(event.call_id, event.at, event,
                     inbound=event.context == self.config.inbound_context)
        self._calls[event.call_id] = call
        return call

    def _resume(self, event: CallResumed) -> list[Action]:
        first = next((c for c in event.channels if c.channel_id == event.call_id), None)
        if first is None:
            first = min(event.channels, key=lambda c: c.at)
        if event.dialed is not None:
            first = ChannelOpened(first.at, first.call_id, first.channel_id, first.name, first.context,
                                  event.dialed, first.caller_num, first.tenant_id)
        call = self._open(first)
        call.started_at = event.started_at
        call.tenant_id = event.tenant_id
        if event.inbound is not None:
            call.inbound = event.inbound
        for channel in event.channels:
            call.live.add(channel.channel_id)
            call.names[channel.channel_id] = channel.name
            if channel.name.startswith(self._trunk_prefix) and not call.inbound:
                call.trunk_used = True
            call.tenant_id = call.tenant_id or channel.tenant_id
        call.initiated_sent = event.initiated_sent
        call.answered_sent = event.answered_sent
        if event.up:
            call.answered_at = event.answered_at or event.at
        actions = self._initiated(call, event.at)
        if call.answered_at is not None:
            actions += self._answered(call, event.at)
        return actions

    def _progress(self, call: _Call, kind: ProgressKind, at: datetime) -> Progress:
        return Progress(kind, call.call_id, call.tenant_id, call.inbound, call.first.exten,
                        call.first.caller_num, call.started_at, at)

    def _initiated(self, call: _Call, at: datetime) -> list[Action]:
        if call.initiated_sent or not call.tenant_id:
            return []
        call.initiated_sent = True
        return [self._progress(call, ProgressKind.INITIATED, at)]

    def _answered(self, call: _Call, at: datetime) -> list[Action]:
        if call.answered_sent or not call.initiated_sent or call.answered_at is None:
            return []
        call.answered_sent = True
        return [self._progress(call, ProgressKind.ANSWERED, call.answered_at)]

    def _summary(self, call: _Call, ended_at: datetime) -> CallSummary:
        return CallSummary(
            call_id=call.call_id, tenant_id=call.tenant_id, inbound=call.inbound,
            trunk_used=call.trunk_used, dialed=call.first.exten, caller_num=call.first.caller_num,
            caller_channel=call.first.name, answered_by=call.answered_by if call.answered_at else "",
            started_at=call.started_at, answered_at=call.answered_at, ended_at=ended_at,
            dial_status=call.dial_status, hangup_cause=call.cause)

    @staticmethod
    def _leg_summary(call: _Call, leg: _Leg, ended_at: datetime) -> CallSummary:
        """A leg as an outbound call of the tenant: from the original caller to the number
        the flows dialled, answered when the carrier channel was."""
        return CallSummary(
            call_id=call.call_id, tenant_id=call.tenant_id, inbound=False, trunk_used=True,
            dialed=leg.dialed, caller_num=call.first.caller_num, caller_channel=leg.name,
            answered_by=leg.name if leg.answered_at else "", started_at=leg.started_at,
            answered_at=leg.answered_at, ended_at=leg.ended_at or ended_at,
            dial_status=leg.status or ("ANSWER" if leg.answered_at else "NOANSWER"),
            hangup_cause=leg.cause, leg=leg.name)
