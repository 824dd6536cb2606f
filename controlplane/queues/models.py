"""Queues as stored, sent and checked; their lines of the flows context; their AMI events.

Pure (no I/O). The queue's Asterisk name is ``q-<uuid>`` (the same token as its flows
extension), its members' interfaces ``PJSIP/<prefix>_<number>``: both built here from
validated parts only, so nothing a tenant types reaches Asterisk. Asterisk reads the queue
and its members through realtime views (migration 0026), the dialplan only enters it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from controlplane.ring_groups.models import DestinationBody, check_destination, check_name
from controlplane.voicemail.render import RecordingScope, recording_hook
from provisioning.destinations import Destination, DestinationKind, goto_args, target_exten
from provisioning.names import NUMBER_PATTERN, endpoint_name

__all__ = ["MAX_MEMBERS", "QueueCreate", "QueueEvent", "QueueEventKind", "QueueMember", "QueueRow",
           "QueueStats", "QueueUpdate", "QueueView", "Strategy", "asterisk_name", "check_queue",
           "member_interface", "parse_queue_event", "queue_id_of", "render_queue"]

MAX_MEMBERS = 100
_NUMBER = re.compile(NUMBER_PATTERN)
_QUEUE_NAME = re.compile(r"q-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


class Strategy(StrEnum):
    RING_ALL = "ring_all"
    ROUND_ROBIN = "round_robin"  # with memory: the next member after the last one that answered
    LEAST_RECENT = "least_recent"
    FEWEST_CALLS = "fewest_calls"

    @property
    def asterisk(self) -> str:
        return _ASTERISK[self]


_ASTERISK = {Strategy.RING_ALL: "ringall", Strategy.ROUND_ROBIN: "rrmemory",
             Strategy.LEAST_RECENT: "leastrecent", Strategy.FEWEST_CALLS: "fewestcalls"}
_FROM_ASTERISK = {v: k for k, v in _ASTERISK.items()}


def strategy_of(asterisk: str) -> Strategy:
    return _FROM_ASTERISK[asterisk]


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class QueueMember(_Body):
    number: str  # the tenant's extension
    penalty: int = 0  # members with a lower penalty are tried first


class QueueCreate(_Body):
    name: str
    members: list[QueueMember] = []
    strategy: Strategy = Strategy.RING_ALL
    ring_seconds: int = 15  # each attempt at a member
    max_wait_seconds: int = 300  # then the overflow destination
    max_callers: int = 0  # 0: no limit; a caller beyond it goes to the overflow destination at once
    announce_position: bool = False
    overflow: DestinationBody | None = None


class QueueUpdate(_Body):
    name: str | msgspec.UnsetType = msgspec.UNSET
    members: list[QueueMember] | msgspec.UnsetType = msgspec.UNSET
    strategy: Strategy | msgspec.UnsetType = msgspec.UNSET
    ring_seconds: int | msgspec.UnsetType = msgspec.UNSET
    max_wait_seconds: int | msgspec.UnsetType = msgspec.UNSET
    max_callers: int | msgspec.UnsetType = msgspec.UNSET
    announce_position: bool | msgspec.UnsetType = msgspec.UNSET
    overflow: DestinationBody | None | msgspec.UnsetType = msgspec.UNSET


class QueueView(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    name: str
    strategy: Strategy
    ring_seconds: int
    max_wait_seconds: int
    max_callers: int
    announce_position: bool
    members: list[QueueMember]
    overflow: DestinationBody | None
    created_at: datetime
    updated_at: datetime


class QueueStats(msgspec.Struct, kw_only=True):
    """Since ``since`` (callers who joined from then on): waiting now, answered, abandoned,
    the rest (timed out to the overflow, or left otherwise), and the average wait of the
    answered ones in whole seconds (null when none was answered)."""

    queue_id: str
    since: datetime
    waiting: int
    answered: int
    abandoned: int
    other: int
    average_wait_s: int | None


@dataclass(frozen=True, slots=True)
class QueueRow:
    """What rendering needs."""

    id: str
    prefix: str
    max_wait_seconds: int
    overflow: Destination | None


def check_queue(q: QueueCreate | QueueView) -> tuple[Destination | None, dict[str, str]]:
    errors = dict(check_name(q.name))
    if not 5 <= q.ring_seconds <= 120:
        errors["ring_seconds"] = "5 to 120 seconds"
    if not 10 <= q.max_wait_seconds <= 7200:
        errors["max_wait_seconds"] = "10 to 7200 seconds"
    if not 0 <= q.max_callers <= 1000:
        errors["max_callers"] = "0 (no limit) to 1000"
    if len(q.members) > MAX_MEMBERS:
        errors["members"] = f"at most {MAX_MEMBERS} members"
    seen: set[str] = set()
    for i, m in enumerate(q.members):
        if not _NUMBER.fullmatch(m.number):
            errors[f"members.{i}.number"] = "an extension number (2-6 digits)"
        elif m.number in seen:
            errors[f"members.{i}.number"] = "listed twice"
        seen.add(m.number)
        if not 0 <= m.penalty <= 100:
            errors[f"members.{i}.penalty"] = "0 to 100"
    overflow, bad = check_destination(q.overflow, "overflow")
    errors.update(bad)
    return overflow, errors


def asterisk_name(queue_id: str) -> str:
    return target_exten(Destination(DestinationKind.QUEUE, queue_id))


def queue_id_of(name: str) -> str | None:
    """The queue id inside an Asterisk queue name we built (None: not one of ours)."""
    match = _QUEUE_NAME.fullmatch(name)
    return match[1] if match else None


def member_interface(prefix: str, number: str) -> str:
    if not _NUMBER.fullmatch(number):
        raise ValueError("member number has the wrong shape")  # validated on write: never reached
    return f"PJSIP/{endpoint_name(prefix, number)}"


def render_queue(q: QueueRow) -> list[str]:
    """``exten => q-<id>,1,...``: answer, wait in the queue (its music, ring strategy and
    members come from the realtime row), then the overflow destination when the caller
    waited ``max_wait_seconds`` or found the queue full (QUEUESTATUS TIMEOUT/FULL/...).
    Without option ``c`` a caller whose agent hangs up is hung up too: nothing after
    ``Queue`` runs for answered calls. The recordings capability's hook runs before the
    caller waits (a no-op without a policy for this queue; MixMonitor ``b`` keeps only the
    bridged part, so the wait is not recorded)."""
    name = asterisk_name(q.id)
    lines = [f"exten => {name},1,Answer()",
             f" same => n,{recording_hook(q.prefix, RecordingScope.QUEUE, q.id)}",
             f" same => n,Queue({name},,,,{int(q.max_wait_seconds)})"]
    if q.overflow is not None:
        lines.append(f" same => n,Goto({goto_args(q.prefix, q.overflow)})")
    lines.append(" same => n,Hangup()")
    return lines


# ---------------------------------------------------------------- AMI events


class QueueEventKind(StrEnum):
    JOINED = "queue.caller_joined"
    ANSWERED = "queue.caller_answered"
    ABANDONED = "queue.caller_abandoned"
    LEFT = "queue.caller_left"  # internal: closes the row of a caller that timed out (no webhook)


_KIND = {"queuecallerjoin": QueueEventKind.JOINED, "agentconnect": QueueEventKind.ANSWERED,
         "queuecallerabandon": QueueEventKind.ABANDONED, "queuecallerleave": QueueEventKind.LEFT}


@dataclass(frozen=True, slots=True)
class QueueEvent:
    kind: QueueEventKind
    queue_id: str
    uniqueid: str  # the caller's channel
    at: datetime
    caller: str = ""
    position: int | None = None
    member: str = ""  # the extension number that answered
    hold_seconds: int | None = None


def _header(headers: Mapping[str, Any], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return ""


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def parse_queue_event(name: str, headers: Mapping[str, Any], at: datetime) -> QueueEvent | None:
    """One of our queues' caller events, or None (another event, another queue, a bad frame)."""
    kind = _KIND.get(name.lower())
    if kind is None:
        return None
    queue_id = queue_id_of(_header(headers, "queue"))
    uniqueid = _header(headers, "uniqueid")
    if queue_id is None or not uniqueid or len(uniqueid) > 64:
        return None
    member = ""
    if kind is QueueEventKind.ANSWERED:
        # MemberName is the queue_members.membername we wrote: the extension number
        member = _header(headers, "membername")
        member = member if _NUMBER.fullmatch(member) else ""
    caller = _header(headers, "calleridnum")
    return QueueEvent(kind, queue_id, uniqueid, at,
                      caller=caller if re.fullmatch(r"\+?[0-9]{1,20}", caller) else "",
                      position=_int(_header(headers, "position")), member=member,
                      hold_seconds=_int(_header(headers, "holdtime")))
