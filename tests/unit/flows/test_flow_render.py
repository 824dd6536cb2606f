"""The flows renderers (provisioning.flows), the compiler to numbered priorities and its diff
(provisioning.flow_compile), loops (provisioning.flow_graph): pure, with injection attempts."""

from __future__ import annotations

from datetime import date

import pytest

from controlplane.voicemail.render import RecordingScope, recording_hook
from provisioning.destinations import Destination, DestinationKind, InvalidDestination, target_exten
from provisioning.flow_compile import BadLine, compile_context, diff, render_file
from provisioning.flow_graph import looping_fields
from provisioning.flows import (DidEntry, HoursRange, IvrMenu, TenantFlows, TimeCondition, UnsafeValue,
                                render_ivr, render_tenant_flows, render_time_condition, safe_timezone)

IVR = "11111111-1111-4111-8111-111111111111"
SUB = "22222222-2222-4222-8222-222222222222"
TC = "33333333-3333-4333-8333-333333333333"
RG = "44444444-4444-4444-8444-444444444444"
HANGUP = Destination(DestinationKind.HANGUP)


def ext(n: str) -> Destination:
    return Destination(DestinationKind.EXTENSION, n)


def menu(**kw: object) -> IvrMenu:
    base: dict[str, object] = dict(id=IVR, prompt="demo-congrats", timeout_seconds=5, max_attempts=3,
                                   dial_by_extension=False,
                                   options={"2": Destination(DestinationKind.RING_GROUP, RG), "9": ext("101")},
                                   timeout=HANGUP, invalid=HANGUP)
    base.update(kw)
    return IvrMenu(**base)  # type: ignore[arg-type]


def test_ivr_options_go_to_the_tenants_own_flows_context() -> None:
    lines = render_ivr("acme", menu())
    text = "\n".join(lines)
    assert lines[0] == f"exten => ivr-{IVR},1,Set(CP_IVR_TRY=0)"
    assert f'GotoIf($["${{CP_IVR_KEY}}" = "2"]?acme-flows,rg-{RG},1)' in text
    assert 'GotoIf($["${CP_IVR_KEY}" = "9"]?acme-flows,ext-101,1)' in text
    assert "Read(CP_IVR_KEY,demo-congrats,1,,1,5)" in text  # one key: no dial-by-extension
    assert "DIALPLAN_EXISTS" not in text
    # every Goto names this tenant's context only
    for line in lines:
        assert "beta-" not in line


def test_dial_by_extension_reaches_only_the_tenants_listed_extensions() -> None:
    text = "\n".join(render_ivr("acme", menu(dial_by_extension=True, extensions=("102", "101"))))
    assert "Read(CP_IVR_KEY,demo-congrats,6,,1,5)" in text
    # digits only survive, and only the tenant's own numbers pass (never 911, never an outbound number)
    assert "Set(CP_IVR_EXT=${FILTER(0123456789,${CP_IVR_KEY})})" in text
    assert "Set(CP_IVR_EXTS=101-102)" in text
    assert "${FIELDNUM(CP_IVR_EXTS,-,${CP_IVR_EXT})} > 0]?acme-flows,ext-${CP_IVR_EXT},1)" in text
    assert "DIALPLAN_EXISTS" not in text  # a pattern ext-<anything> entry would satisfy it
    with pytest.raises(UnsafeValue):
        render_ivr("acme", menu(dial_by_extension=True, extensions=("101-911",)))


@pytest.mark.parametrize("prompt", ["demo,congrats", "x\nexten => 1,1,Dial(PJSIP/beta_101)", "a;b", "[beta]",
                                    "../../etc/passwd,", "/srv/../etc/passwd", "a b", ""])
def test_hostile_prompt_names_are_refused(prompt: str) -> None:
    with pytest.raises(UnsafeValue):
        render_ivr("acme", menu(prompt=prompt))


@pytest.mark.parametrize("key", ["#", "10", ",", "a", "\n"])
def test_hostile_option_keys_are_refused(key: str) -> None:
    with pytest.raises(UnsafeValue):
        render_ivr("acme", menu(options={key: HANGUP}))


@pytest.mark.parametrize("ref", ["101,1)", "101\n", "beta-internal", "../1", "1;", "x" * 7])
def test_hostile_refs_cannot_build_a_destination(ref: str) -> None:
    with pytest.raises(InvalidDestination):
        Destination(DestinationKind.EXTENSION, ref)
    with pytest.raises(InvalidDestination):
        Destination(DestinationKind.IVR, ref)


def test_hostile_object_id_is_refused_by_the_renderer() -> None:
    with pytest.raises(UnsafeValue):
        render_ivr("acme", menu(id="1,1)\n[beta-internal]"))


def test_timezone_of_odd_shape_becomes_utc() -> None:
    assert safe_timezone("America/New_York") == "America/New_York"
    for bad in ("UTC,1)", "Europe/Paris\n", "a;b", "../x", ""):
        assert safe_timezone(bad) == "UTC"


def tc(**kw: object) -> TimeCondition:
    base: dict[str, object] = dict(id=TC, timezone="America/Chicago",
                                   hours=(HoursRange(("mon", "fri"), "09:00", "17:30"),),
                                   holidays=(date(2026, 12, 25),), override="none", open=ext("101"),
                                   closed=Destination(DestinationKind.VOICEMAIL, "101"))
    base.update(kw)
    return TimeCondition(**base)  # type: ignore[arg-type]


def test_time_condition_reads_the_clock_in_the_tenants_zone() -> None:
    text = "\n".join(render_time_condition("acme", tc()))
    assert "STRFTIME(${CP_TC_NOW},America/Chicago,%u)" in text
    assert 'GotoIf($["${CP_TC_DAY}" = "20261225"]?closed)' in text
    assert "GotoIf($[${CP_TC_DOW} = 1 & ${CP_TC_MIN} >= 540 & ${CP_TC_MIN} < 1050]?open)" in text
    assert "GotoIf($[${CP_TC_DOW} = 5 & ${CP_TC_MIN} >= 540 & ${CP_TC_MIN} < 1050]?open)" in text
    assert "CP_TC_DOW} = 3" not in text  # wednesday is not in the range
    assert " same => n(open),Goto(acme-flows,ext-101,1)" in text
    assert "Goto(acme-flows,vm-101,1)" in text


def test_override_skips_the_clock() -> None:
    assert render_time_condition("acme", tc(override="closed")) == [f"exten => tc-{TC},1,Goto(acme-flows,vm-101,1)"]
    assert render_time_condition("acme", tc(override="open")) == [f"exten => tc-{TC},1,Goto(acme-flows,ext-101,1)"]


def test_bad_hours_reach_no_line() -> None:
    with pytest.raises(UnsafeValue):
        render_time_condition("acme", tc(hours=(HoursRange(("mon",), "9:00)", "17:00"),)))


def test_tenant_flows_dids_unassigned_externals() -> None:
    lines = render_tenant_flows(TenantFlows(
        prefix="acme", dids=(DidEntry("+15550001111", Destination(DestinationKind.IVR, IVR)),
                             DidEntry("+15550001112", None)),
        externals=frozenset({"+14155550123"}), extension_fallback=("101",)))
    assert f"exten => did-15550001111,1,Goto(acme-flows,ivr-{IVR},1)" in lines
    assert "exten => did-15550001112,1,Goto(acme-flows,did,1)" in lines
    assert "exten => did,1,Goto(cp-not-configured,s,1)" in lines  # the default unassigned behaviour
    assert "exten => out-14155550123,1,Goto(acme-dial,+14155550123,1)" in lines  # admission, caller id, guard
    assert "exten => ext-101,1,Goto(acme-internal,101,1)" in lines
    routed = render_tenant_flows(TenantFlows(prefix="acme", unassigned=ext("101")))
    assert "exten => did,1,Goto(acme-flows,ext-101,1)" in routed


def test_a_dids_entry_runs_its_recording_hook_first() -> None:
    hook = recording_hook("acme", RecordingScope.DID, "+15550001111")
    lines = render_tenant_flows(TenantFlows(prefix="acme", dids=(
        DidEntry("+15550001111", Destination(DestinationKind.IVR, IVR), hook),)))
    at = lines.index("exten => did-15550001111,1,"
                     "GosubIf(${DIALPLAN_EXISTS(acme-flows,rec-did-15550001111,1)}?acme-flows,rec-did-15550001111,1)")
    assert lines[at + 1] == f" same => n,Goto(acme-flows,ivr-{IVR},1)"
    # the hook survives numbering for AMI unchanged (its target is another extension's priority 1)
    compiled = compile_context("acme-flows", lines)
    assert compiled[("did-15550001111", 1)].app == "GosubIf"
    assert compiled[("did-15550001111", 2)].data == f"acme-flows,ivr-{IVR},1"


@pytest.mark.parametrize("hook", [
    recording_hook("other", RecordingScope.DID, "+15550001111"),  # another tenant's context
    recording_hook("acme", RecordingScope.DID, "+15550009999"),  # another DID's policy
    "GosubIf(${DIALPLAN_EXISTS(acme-flows,rec-did-15550001111,1)}?acme-flows,rec-did-15550001111,1);Dial(x)",
    "Set(CP_REC=always)",
])
def test_a_foreign_or_unsafe_recording_hook_reaches_no_line(hook: str) -> None:
    with pytest.raises(UnsafeValue):
        render_tenant_flows(TenantFlows(prefix="acme", dids=(DidEntry("+15550001111", None, hook),)))


def test_did_kind_names() -> None:
    assert target_exten(Destination(DestinationKind.DID, "+15550001111")) == "did-15550001111"
    assert target_exten(Destination(DestinationKind.DID)) == "did"


# ------------------------------------------------------------------ compile and diff

def test_labels_become_numbers_for_ami() -> None:
    compiled = compile_context("acme-flows", render_ivr("acme", menu()))
    by_number = {n: p for (e, n), p in compiled.items()}
    assert by_number[3].label == "prompt"
    timeout = next(p.number for p in compiled.values() if p.label == "timeout")
    assert by_number[6].data == f'$["${{CP_IVR_KEY}}" = ""]?{timeout}'
    goto_prompt = [p for p in compiled.values() if p.app == "Goto" and p.data == "3"]
    assert goto_prompt, "Goto(prompt) resolved to its number"
    # a Goto to another context keeps its target
    assert any(p.data == f"acme-flows,rg-{RG},1" or p.data.endswith(f"?acme-flows,rg-{RG},1")
               for p in compiled.values())
    text = render_file("acme-flows", compiled)
    assert text.startswith("[acme-flows]\n") and f"exten => ivr-{IVR},3,Set(" in text


@pytest.mark.parametrize("line", ["exten => x,1,NoOp(a)\nexten => y,1,Dial(PJSIP/beta_101)",
                                  "exten => x,1,NoOp(a;b)", " same => n,NoOp(no exten yet)",
                                  "[beta-internal]", "include => beta-internal"])
def test_bad_lines_are_refused(line: str) -> None:
    with pytest.raises(BadLine):
        compile_context("acme-flows", [line])


def test_diff_adds_replaces_trims_and_removes() -> None:
    old = compile_context("c", ["exten => a,1,NoOp(1)", " same => n,NoOp(2)", " same => n,NoOp(3)",
                                "exten => gone,1,Hangup()"])
    new = compile_context("c", ["exten => a,1,NoOp(1)", " same => n,NoOp(two)", "exten => b,1,Hangup()"])
    change = diff(old, new)
    assert [(p.exten, p.number, p.data) for p in change.add] == [("a", 2, "two"), ("b", 1, "")]
    assert change.remove_priorities == (("a", 3),)
    assert change.remove_extens == ("gone",)
    assert diff(new, new).empty


# ------------------------------------------------------------------ loops

def test_loops_without_a_key_press_are_found() -> None:
    tc_d, rg_d, ivr_d = (Destination(DestinationKind.TIME_CONDITION, TC), Destination(DestinationKind.RING_GROUP, RG),
                         Destination(DestinationKind.IVR, IVR))
    others = [(rg_d, "no_answer", tc_d)]
    assert looping_fields(tc_d, {"open_destination": rg_d, "closed_destination": HANGUP}, others) == [
        "open_destination"]
    # "9: back to the main menu" is the caller's choice: not a loop
    assert looping_fields(ivr_d, {"options.9": ivr_d}, []) == []
    sub = Destination(DestinationKind.IVR, SUB)
    assert looping_fields(sub, {"options.0": ivr_d}, [(ivr_d, "options.1", sub)]) == []
    # an IVR's timeout destination that comes straight back without any key is a loop
    assert looping_fields(ivr_d, {"timeout_destination": tc_d}, [(tc_d, "open_destination", ivr_d)]) == [
        "timeout_destination"]
