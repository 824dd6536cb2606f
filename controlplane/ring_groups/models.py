"""Ring groups as stored, sent and checked, and their lines of the tenant's flows context.

Pure (no I/O): validation names every field at fault; rendering builds each dialplan token
from validated parts only (a UUID, digits, an E.164 number, the tenant's prefix), so nothing
a tenant types ever reaches the dialplan as text. The name is never rendered.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from enum import StrEnum

import msgspec

from provisioning.destinations import Destination, DestinationKind, InvalidDestination, goto_args, target_exten
from provisioning.names import NUMBER_PATTERN, dial_context, endpoint_name

__all__ = ["DestinationBody", "MAX_MEMBERS", "Member", "MemberKind", "RingGroup", "RingGroupCreate",
           "RingGroupRow", "RingGroupUpdate", "Strategy", "check_destination", "check_name", "dial_target",
           "render_ring_group"]

MAX_MEMBERS = 20
_NUMBER = re.compile(NUMBER_PATTERN)
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class Strategy(StrEnum):
    RING_ALL = "ring_all"  # every member at once; the first to answer takes the call
    SEQUENTIAL = "sequential"  # hunt: one member after the other, ring_seconds each


class MemberKind(StrEnum):
    EXTENSION = "extension"
    EXTERNAL = "external"  # an E.164 number: dialled like the tenant's own outbound call


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Member(_Body):
    kind: MemberKind
    number: str


class DestinationBody(_Body):
    """A typed destination as the API takes and shows it (``controlplane.destinations``)."""

    kind: DestinationKind
    ref: str = ""


class RingGroupCreate(_Body):
    name: str
    members: list[Member]
    strategy: Strategy = Strategy.RING_ALL
    ring_seconds: int = 20
    no_answer: DestinationBody | None = None


class RingGroupUpdate(_Body):
    name: str | msgspec.UnsetType = msgspec.UNSET
    members: list[Member] | msgspec.UnsetType = msgspec.UNSET
    strategy: Strategy | msgspec.UnsetType = msgspec.UNSET
    ring_seconds: int | msgspec.UnsetType = msgspec.UNSET
    no_answer: DestinationBody | None | msgspec.UnsetType = msgspec.UNSET


class RingGroup(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    name: str
    strategy: Strategy
    ring_seconds: int
    members: list[Member]
    no_answer: DestinationBody | None
    created_at: datetime
    updated_at: datetime


class RingGroupRow(msgspec.Struct, kw_only=True, frozen=True):
    """What rendering needs: the group and its tenant's prefix."""

    id: str
    prefix: str
    strategy: Strategy
    ring_seconds: int
    members: tuple[Member, ...]
    no_answer: Destination | None


def check_name(name: str, field: str = "name") -> dict[str, str]:
    if not 1 <= len(name.strip()) <= 80 or len(name) > 80:
        return {field: "1 to 80 characters"}
    if any(unicodedata.category(c).startswith("C") for c in name):
        return {field: "no control characters"}
    return {}


def check_destination(body: DestinationBody | None, field: str) -> tuple[Destination | None, dict[str, str]]:
    """The body as a ``Destination`` (shape only; existence is ``Destinations.bind``'s)."""
    if body is None:
        return None, {}
    try:
        return Destination(body.kind, body.ref), {}
    except InvalidDestination as exc:
        return None, {f"{field}.ref": str(exc)}


def check_members(members: list[Member], field: str = "members") -> dict[str, str]:
    errors: dict[str, str] = {}
    if not 1 <= len(members) <= MAX_MEMBERS:
        errors[field] = f"1 to {MAX_MEMBERS} members"
    seen: set[tuple[MemberKind, str]] = set()
    for i, m in enumerate(members):
        shape = _NUMBER if m.kind is MemberKind.EXTENSION else _E164
        if not shape.fullmatch(m.number):
            errors[f"{field}.{i}.number"] = ("an extension number (2-6 digits)" if m.kind is MemberKind.EXTENSION
                                             else "an E.164 number (+ and 7-15 digits)")
        elif (m.kind, m.number) in seen:
            errors[f"{field}.{i}.number"] = "listed twice"
        seen.add((m.kind, m.number))
    return errors


def check_ring_seconds(value: int, field: str = "ring_seconds") -> dict[str, str]:
    return {} if 5 <= value <= 300 else {field: "5 to 300 seconds"}


def dial_target(prefix: str, member: Member) -> str:
    """One member as a Dial() target: the tenant's own phone, or a Local channel through the
    tenant's ``<prefix>-dial`` context (the outbound checks, admission and the trunk)."""
    if member.kind is MemberKind.EXTENSION and _NUMBER.fullmatch(member.number):
        return f"PJSIP/{endpoint_name(prefix, member.number)}"
    if member.kind is MemberKind.EXTERNAL and _E164.fullmatch(member.number):
        return f"Local/{member.number}@{dial_context(prefix)}/n"
    raise ValueError("member number has the wrong shape")  # validated on write: never reached


def render_ring_group(group: RingGroupRow) -> list[str]:
    """``exten => rg-<id>,1,...``: ring the members, then the no-answer destination (or hang up).

    After an answered Dial the caller comes back here when the callee hangs up, so every
    Dial is followed by a jump out on ANSWER: the no-answer destination only takes calls
    nobody answered."""
    exten = target_exten(Destination(DestinationKind.RING_GROUP, group.id))
    targets = [dial_target(group.prefix, m) for m in group.members]
    ring = int(group.ring_seconds)
    dials = ["&".join(targets)] if group.strategy is Strategy.RING_ALL else targets
    lines = [f"exten => {exten},1,NoOp(ring group)"]
    for target in dials:
        lines.append(f" same => n,Dial({target},{ring})")
        lines.append(' same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)')
    if group.no_answer is not None:
        lines.append(f" same => n,Goto({goto_args(group.prefix, group.no_answer)})")
    lines.append(" same => n(done),Hangup()")
    return lines
