"""Whether a tenant's calls go through: the one rule behind the dialplan (rendering),
admission (controlplane/limits) and the tenant services.

Pure. Emergency calls (911/933) are outside this rule: Kari's Law lets them out
whatever the status, so the dialplan routes them before this rule is consulted.

The rule reads the tenant's status only. The issue that asked for this module names
two more inputs, persisted suspension causes and a partner status; neither exists in
the schema today (a suspension's cause travels in its event, partners have no status).
When one is persisted it becomes a parameter here, and every caller already asks here.
"""

from __future__ import annotations

from dataclasses import dataclass

from provisioning.model import TenantStatus

# Q.850 "call rejected": what a refused tenant's call is hung up with; PJSIP answers 403.
CAUSE_CALL_REJECTED = 21


@dataclass(frozen=True, slots=True)
class CallAccess:
    """What a tenant may do with calls right now."""

    outbound: bool  # its phones place calls (to its extensions, its features, the carrier)
    inbound: bool  # calls from the carrier reach it through its DIDs


_OPEN = CallAccess(outbound=True, inbound=True)
_CLOSED = CallAccess(outbound=False, inbound=False)
# A trial is a tenant like any other as far as calls go; suspended and cancelled ones call nothing.
_CALLING = frozenset({TenantStatus.TRIAL, TenantStatus.ACTIVE})


def call_access(status: TenantStatus) -> CallAccess:
    """The tenant status -> (outbound allowed, inbound allowed)."""
    return _OPEN if status in _CALLING else _CLOSED
