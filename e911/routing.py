"""Which number a 911 call presents, and where it goes. Pure.

The PSAP finds the caller's location from the calling number, so an emergency
call presents a DID whose address is registered: the extension's own DID first,
else any registered DID of the same tenant. With none, the call still goes out -
to the national relay trunk, whose operator asks for the location - and the
partner is alerted. A call is never refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# PJSIP endpoint names of the two trunks (rendered by e911.trunks or the operator).
EMERGENCY_TRUNK = "cp-emergency"
RELAY_TRUNK = "cp-emergency-relay"
# AMI UserEvent raised by the dialplan when a call leaves through the relay.
UNREGISTERED_USEREVENT = "CpE911Unregistered"


@dataclass(frozen=True, slots=True)
class EmergencyDid:
    number: str
    extension_id: str | None
    registered: bool


@dataclass(frozen=True, slots=True)
class EmergencyPlan:
    """Per tenant: the tenant-wide fallback and the extensions with a registered DID of their own."""

    default_cid: str | None
    by_extension: dict[str, str] = field(default_factory=dict)

    def caller_id(self, extension_id: str | None) -> str | None:
        """The number a call from ``extension_id`` presents; None means the relay trunk."""
        if extension_id is not None and extension_id in self.by_extension:
            return self.by_extension[extension_id]
        return self.default_cid


def plan(dids: Iterable[EmergencyDid]) -> EmergencyPlan:
    """Deterministic: the lowest registered number wins where several qualify."""
    registered = sorted((d for d in dids if d.registered), key=lambda d: d.number)
    by_extension: dict[str, str] = {}
    for did in registered:
        if did.extension_id is not None:
            by_extension.setdefault(did.extension_id, did.number)
    return EmergencyPlan(registered[0].number if registered else None, by_extension)
