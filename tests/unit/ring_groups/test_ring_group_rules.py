"""Ring groups' pure rules: validation names each field at fault, rendering only ever writes
the tenant's own names, and hostile input never reaches a dialplan line."""

from __future__ import annotations

import re

import msgspec
import pytest

from controlplane.ring_groups.models import (DestinationBody, Member, MemberKind, RingGroupCreate, RingGroupRow,
                                             Strategy, check_destination, check_members, check_name,
                                             dial_target, render_ring_group)
from provisioning.destinations import Destination, DestinationKind

RG = "0b7c5a34-1f7e-4d55-9a55-3f0e2a1b6c01"
VM = Destination(DestinationKind.VOICEMAIL, "101")


def row(strategy: Strategy, *members: Member, no_answer: Destination | None = VM) -> RingGroupRow:
    return RingGroupRow(id=RG, prefix="acme", strategy=strategy, ring_seconds=25, members=members,
                        no_answer=no_answer)


EXT = Member(kind=MemberKind.EXTENSION, number="101")
EXT2 = Member(kind=MemberKind.EXTENSION, number="102")
OUT = Member(kind=MemberKind.EXTERNAL, number="+14155550123")


def test_ring_all_dials_every_member_at_once_then_the_no_answer_destination() -> None:
    lines = render_ring_group(row(Strategy.RING_ALL, EXT, EXT2, OUT))
    assert lines == [
        f"exten => rg-{RG},1,NoOp(ring group)",
        " same => n,Dial(PJSIP/acme_101&PJSIP/acme_102&Local/+14155550123@acme-dial/n,25)",
        ' same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)',
        " same => n,Goto(acme-flows,vm-101,1)",
        " same => n(done),Hangup()",
    ]


def test_sequential_rings_one_member_after_the_other_and_stops_at_an_answer() -> None:
    lines = render_ring_group(row(Strategy.SEQUENTIAL, EXT, OUT, no_answer=None))
    dials = [line for line in lines if "Dial(" in line]
    assert dials == [" same => n,Dial(PJSIP/acme_101,25)", " same => n,Dial(Local/+14155550123@acme-dial/n,25)"]
    assert sum("ANSWER" in line for line in lines) == 2
    assert lines[-1] == " same => n(done),Hangup()" and not any("Goto(" in line for line in lines)


def test_external_members_go_through_the_tenants_own_dial_context() -> None:
    # the same checks and admission as a dialled call: <prefix>-dial, never the trunk directly
    assert dial_target("acme", OUT) == "Local/+14155550123@acme-dial/n"
    assert dial_target("acme", EXT) == "PJSIP/acme_101"


@pytest.mark.parametrize("number", ["101;x", "101\n[evil]", "1", "1234567", "10a", "+1415", "+14155550123&x",
                                    "Local/1@other-dial"])
def test_hostile_member_numbers_are_refused_and_never_rendered(number: str) -> None:
    for kind in MemberKind:
        member = Member(kind=kind, number=number)
        assert check_members([member]) == {"members.0.number": check_members([member])["members.0.number"]}
        with pytest.raises(ValueError):
            dial_target("acme", member)


def test_every_field_at_fault_is_named() -> None:
    errors = check_members([EXT, Member(kind=MemberKind.EXTERNAL, number="12"), EXT])
    assert errors == {"members.1.number": "an E.164 number (+ and 7-15 digits)", "members.2.number": "listed twice"}
    assert check_members([]) == {"members": "1 to 20 members"}
    assert check_name("") == {"name": "1 to 80 characters"}
    assert check_name("Sales\nteam") == {"name": "no control characters"}
    assert check_name("Ventes [Paris]; étage 2") == {}  # any printable name: it is never rendered


@pytest.mark.parametrize("ref", ["101;Hangup", "../x", "[acme-flows]", "0b7c5a34-1f7e-4d55-9a55-3f0e2a1b6c01\n"])
def test_hostile_destination_refs_are_refused(ref: str) -> None:
    found, errors = check_destination(DestinationBody(kind=DestinationKind.IVR, ref=ref), "no_answer")
    assert found is None and list(errors) == ["no_answer.ref"]


def test_only_validated_tokens_reach_the_dialplan() -> None:
    lines = render_ring_group(row(Strategy.RING_ALL, EXT))
    assert all(re.fullmatch(r"[ -~]*", line) for line in lines)
    assert not any(c in "".join(lines) for c in "\n;")
    # brackets only in our own fixed expression ($[...]), never around anything given
    assert [line for line in lines if "[" in line or "]" in line] == [
        ' same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)']


def test_the_body_refuses_unknown_fields_and_strategies() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"name": "x", "members": [], "strategy": "random"}, RingGroupCreate)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"name": "x", "members": [], "context": "other-flows"}, RingGroupCreate)
