"""Emergency routing: which number a 911 call presents, and the rendered dialplan."""

from __future__ import annotations

from e911.routing import EmergencyDid, plan
from e911.trunks import render_trunks
from provisioning.dialplan import render_dialplan
from provisioning.model import DidState, DidStatus, ExtensionState, ProvisioningState, TenantState, TenantStatus


def test_own_registered_did_first_then_any_registered_then_relay() -> None:
    p = plan([EmergencyDid("+15015550102", "e2", False), EmergencyDid("+15015550101", "e1", True),
              EmergencyDid("+15015550109", None, True)])
    assert p.caller_id("e1") == "+15015550101"
    assert p.caller_id("e2") == "+15015550101"  # its own DID is not registered: the tenant's first
    assert plan([EmergencyDid("+15015550102", "e2", False)]).caller_id("e2") is None


def _state(status: TenantStatus, registered: bool) -> ProvisioningState:
    return ProvisioningState(
        (TenantState("t1", "acme", status, "ACME"),),
        (ExtensionState("e1", "t1", "101", "A", "x"), ExtensionState("e2", "t1", "102", "B", "x")),
        (DidState("+15015550101", "t1", "e1", DidStatus.ACTIVE, "O'Brien, Co", registered),))


def test_suspended_tenant_still_dials_911_933_and_9911() -> None:
    text = render_dialplan(_state(TenantStatus.SUSPENDED, True))
    for number, target in (("911", "911"), ("933", "933"), ("9911", "911")):
        assert f"exten => {number},1,Goto(acme-emergency,{target},1)" in text
    assert "Set(E911_CID=+15015550101)" in text
    assert "Dial(PJSIP/${EXTEN}@cp-emergency)" in text and "Dial(PJSIP/${EXTEN}@cp-emergency-relay)" in text


def test_unregistered_tenant_goes_to_the_relay() -> None:
    text = render_dialplan(_state(TenantStatus.ACTIVE, False))
    assert " same => n,Set(E911_CID=)\n" in text
    assert "ExecIf" not in text


def test_outbound_presents_the_extension_did_and_its_cnam() -> None:
    text = render_dialplan(_state(TenantStatus.ACTIVE, False))
    assert '$["${CHANNEL(endpoint)}" = "acme_101"]?cid101' in text
    assert "n(cid101),Set(CALLERID(num)=+15015550101)" in text
    assert "Set(CALLERID(name)=O'Brien, Co)" in text


def test_trunks_render_and_relay_falls_back_to_the_trunk() -> None:
    text = render_trunks("10.0.0.1", 5070, None, 5060)
    assert "[cp-emergency]" in text and "[cp-emergency-relay]" in text
    assert text.count("contact = sip:10.0.0.1:5070") == 2
    assert render_trunks(None, 5060, None, 5060) == ""
