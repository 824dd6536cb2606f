"""The call-access rule (provisioning.access: tenant and partner status): its truth table, and the places
that obey it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from cdr_ingest.classify import CallClass
from controlplane.limits.state import PartnerState
from controlplane.limits.state import TenantState as AdmissionState
from controlplane.limits.policy import CAUSE_FORBIDDEN, Account, Ledger, Limits, Reason, Usage, decide
from provisioning.access import CAUSE_CALL_REJECTED, CallAccess, call_access
from provisioning.dialplan import render_dialplan
from provisioning.model import (DidState, ExtensionState, PartnerStatus, ProvisioningState, TenantState,
                                TenantStatus)

TRUTH = {
    TenantStatus.TRIAL: CallAccess(outbound=True, inbound=True),
    TenantStatus.ACTIVE: CallAccess(outbound=True, inbound=True),
    TenantStatus.SUSPENDED: CallAccess(outbound=False, inbound=False),
    TenantStatus.CANCELLED: CallAccess(outbound=False, inbound=False),
}


def test_truth_table_covers_every_status() -> None:
    assert set(TRUTH) == set(TenantStatus)
    for status, expected in TRUTH.items():
        assert call_access(status, PartnerStatus.ACTIVE) == expected, status
        # A trial partner's tenants call like an active one's (what a trial may dial: admission).
        assert call_access(status, PartnerStatus.TRIAL) == expected, status


@pytest.mark.parametrize("status", list(TenantStatus))
def test_a_suspended_partner_closes_every_tenant(status: TenantStatus) -> None:
    assert call_access(status, PartnerStatus.SUSPENDED) == CallAccess(outbound=False, inbound=False)


def test_a_refusal_is_call_rejected_for_admission_too() -> None:
    assert CAUSE_CALL_REJECTED == CAUSE_FORBIDDEN == 21


@pytest.mark.parametrize("partner", list(PartnerStatus))
@pytest.mark.parametrize("status", list(TenantStatus))
def test_admission_follows_the_rule(status: TenantStatus, partner: PartnerStatus) -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    state = AdmissionState("ten_a", "ptr_a", status.value, "UTC", Limits(), False, Usage(), now, now,
                           partner=PartnerState("ptr_a", partner, 10**9))
    access = call_access(status, partner)
    assert state.calls_allowed is access.outbound
    account = Account(partner, 10**9)
    decision = decide(Limits(), state.calls_allowed, Usage(), Ledger(), "c1", None, 3600, account=account,
                      call_class=CallClass.LOCAL)
    assert decision.admit is access.outbound
    if not decision.admit:
        reason = Reason.PARTNER_SUSPENDED if partner is PartnerStatus.SUSPENDED else Reason.SUSPENDED
        assert (decision.reason, decision.cause) == (reason, CAUSE_CALL_REJECTED)


def _contexts(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        head = re.fullmatch(r"\[([^\]]+)\]", line)
        if head:
            current = head[1]
            found[current] = []
        elif current and line and not line.startswith(";"):
            found[current].append(line)
    return found


@pytest.mark.parametrize("partner", list(PartnerStatus))
@pytest.mark.parametrize("status", [s for s in TenantStatus if s.provisioned])
def test_rendering_follows_the_rule(status: TenantStatus, partner: PartnerStatus) -> None:
    state = ProvisioningState(
        tenants=(TenantState("ten_a", "acme", status, partner_status=partner),),
        extensions=(ExtensionState("ext_1", "ten_a", "101", "One", "a" * 32),),
        dids=(DidState("+12125550100", "ten_a", "ext_1"),))
    contexts = _contexts(render_dialplan(state))
    access = call_access(status, partner)
    phones = contexts["acme-internal"]
    assert any("Dial(PJSIP/acme_101" in line for line in phones) is access.outbound
    assert any(f"Hangup({CAUSE_CALL_REJECTED})" in line for line in phones) is not access.outbound
    assert ("acme-dial" in contexts) is access.outbound
    assert any("Goto(911" in line or "emergency" in line for line in phones), "emergency is never refused"
    assert any(line.startswith("exten => 911,1,Goto(acme-emergency") for line in phones), phones
    assert "Dial(PJSIP/${EXTEN}@" in "\n".join(contexts["acme-emergency"]), "the emergency context is rendered"
    carrier = next(line for line in contexts["from-carrier"] if "+12125550100" in line)
    inbound = contexts["acme-inbound"]
    assert ("cp-suspended" not in carrier) is access.inbound
    # The DID goes on to its entry in the flows context (controlplane/flows decides the route there).
    assert any("?acme-flows,did-12125550100,1)" in line for line in inbound) is access.inbound
    assert any("Goto(acme-internal,101,1)" in line for line in inbound) is access.inbound


def test_cancelled_tenants_render_nothing() -> None:
    state = ProvisioningState(tenants=(TenantState("ten_a", "acme", TenantStatus.CANCELLED),))
    assert "acme-" not in render_dialplan(state)
