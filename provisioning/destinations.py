"""Where a call can be sent inside a tenant, and the one dialplan name of each such place.

A destination is a typed reference (kind + ref), validated on write by the capability
that owns the kind (``controlplane.destinations``). Every destination is reached the same
way: ``Goto(<prefix>-flows,<exten>,1)``, where the owner of the kind renders ``<exten>``
in the tenant's flows context. The names are built here only, from refs that can hold
nothing but ``[0-9a-z-]`` or digits, so no input ever reaches the dialplan as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from provisioning.names import NUMBER_PATTERN

__all__ = ["Destination", "DestinationKind", "InvalidDestination", "flows_context", "goto_args",
           "target_exten"]

# Object ids are our own UUIDs (lower-case hex and dashes); extension numbers the tenant's.
_OBJECT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NUMBER = re.compile(NUMBER_PATTERN)
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class DestinationKind(StrEnum):
    EXTENSION = "extension"  # ref: extension number; rings it (voicemail on no answer if enabled)
    VOICEMAIL = "voicemail"  # ref: extension number whose box takes a message
    IVR = "ivr"  # ref: IVR id
    RING_GROUP = "ring_group"  # ref: ring group id
    QUEUE = "queue"  # ref: queue id
    TIME_CONDITION = "time_condition"  # ref: time condition id
    EXTERNAL = "external"  # ref: E.164 number, dialled like the tenant's own outbound call
    HANGUP = "hangup"  # ref: "" (the call is ended)
    # Not a target: the entry point of a tenant's DID (ref: its E.164 number), or with ref ""
    # the tenant's unassigned-DID behaviour. Owners of references (``Destinations.users``
    # names them) and rendered by the flows capability; ``bind`` refuses it as a target.
    DID = "did"


# The token that starts a kind's extension name in the flows context.
_TOKEN = {
    DestinationKind.EXTENSION: "ext", DestinationKind.VOICEMAIL: "vm", DestinationKind.IVR: "ivr",
    DestinationKind.RING_GROUP: "rg", DestinationKind.QUEUE: "q", DestinationKind.TIME_CONDITION: "tc",
    DestinationKind.EXTERNAL: "out", DestinationKind.HANGUP: "hangup", DestinationKind.DID: "did",
}


class InvalidDestination(ValueError):
    """A ref that does not have its kind's shape."""


@dataclass(frozen=True, slots=True)
class Destination:
    kind: DestinationKind
    ref: str = ""

    def __post_init__(self) -> None:
        shape = {DestinationKind.EXTENSION: _NUMBER, DestinationKind.VOICEMAIL: _NUMBER,
                 DestinationKind.EXTERNAL: _E164, DestinationKind.DID: _E164}.get(self.kind, _OBJECT_ID)
        if self.kind is DestinationKind.DID and not self.ref:
            return  # the tenant's unassigned-DID behaviour
        if self.kind is DestinationKind.HANGUP:
            if self.ref:
                raise InvalidDestination("a hangup destination has no ref")
        elif not shape.fullmatch(self.ref):
            raise InvalidDestination(f"{self.kind.value} ref has the wrong shape")


def flows_context(prefix: str) -> str:
    """The tenant's context holding every destination's entry point."""
    return f"{prefix}-flows"


def target_exten(destination: Destination) -> str:
    """The destination's extension name in the flows context (``ivr-<id>``, ``ext-101``, ...)."""
    token = _TOKEN[destination.kind]
    if destination.kind in (DestinationKind.EXTERNAL, DestinationKind.DID) and destination.ref:
        return f"{token}-{destination.ref[1:]}"  # digits only: "+" is not kept in a name
    return f"{token}-{destination.ref}" if destination.ref else token


def goto_args(prefix: str, destination: Destination) -> str:
    """``<prefix>-flows,<exten>,1``: the arguments of the ``Goto`` that reaches it."""
    return f"{flows_context(prefix)},{target_exten(destination)},1"
