"""Whether a tenant's calls go through: the one rule behind the dialplan (rendering),
admission (controlplane/limits) and the tenant services.

Pure. Emergency calls (911/933) are outside this rule: Kari's Law lets them out
whatever the status, so the dialplan routes them before this rule is consulted.

The rule reads the tenant's status and its partner's platform account (seed 003
"Trial -> Active"): a partner whose trial ended unactivated is SUSPENDED, and its
tenants are then refused like suspended tenants (no outbound, DIDs not connected).
A partner in TRIAL calls like an active one here; what a trial may not dial
(international, premium) is a per-call question, answered by admission
(controlplane.limits.policy), not by this status rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from provisioning.model import PartnerStatus, TenantStatus

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
_PARTNER_CALLING = frozenset({PartnerStatus.TRIAL, PartnerStatus.ACTIVE})


def call_access(status: TenantStatus, partner: PartnerStatus) -> CallAccess:
    """(tenant status, its partner's status) -> (outbound allowed, inbound allowed)."""
    return _OPEN if status in _CALLING and partner in _PARTNER_CALLING else _CLOSED
