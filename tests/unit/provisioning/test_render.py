"""Rendering: golden files, determinism, structural isolation, dial strings, speed.

The golden files are never written by a test: after a reviewed template change,
regenerate them with ``python tests/unit/provisioning/test_render.py``.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
from dialsim import dial, parse
from hypothesis import given, settings
from hypothesis import strategies as st
from provisioning_sample import STATE

from cdr_ingest.dialing import destination
from provisioning.dialplan import AdmissionStep, render_dialplan
from provisioning.model import ExtensionState, ProvisioningState, TenantState, TenantStatus
from provisioning.pjsip import render_extension, render_pjsip, render_static_conf
from provisioning.realtime_conf import PgTarget, realtime_files

GOLDEN = Path(__file__).parent / "golden"


def _rendered() -> dict[str, str]:
    files = realtime_files(PgTarget.from_dsn("postgresql://postgres:s3cret@127.0.0.1:5433/controlplane"))
    return {"extensions_tenants.conf": render_dialplan(STATE),
            "pjsip_static.conf": render_static_conf(render_pjsip(STATE)),
            "realtime.conf": "".join(f";; --- {name}\n{text}" for name, text in sorted(files.items()))}


def _golden(name: str) -> None:
    path = GOLDEN / name
    assert path.exists(), f"{name}: no golden file (run python {__file__} after reviewing the output)"
    assert _rendered()[name] == path.read_text(), f"{name} differs from its golden file"


def test_dialplan_matches_golden() -> None:
    _golden("extensions_tenants.conf")


def test_pjsip_matches_golden() -> None:
    _golden("pjsip_static.conf")


def test_realtime_files_match_golden() -> None:
    _golden("realtime.conf")


def test_same_state_in_any_order_renders_the_same_bytes() -> None:
    rng = random.Random(7)
    for _ in range(5):
        shuffled = ProvisioningState(tuple(rng.sample(STATE.tenants, len(STATE.tenants))),
                                     tuple(rng.sample(STATE.extensions, len(STATE.extensions))),
                                     tuple(rng.sample(STATE.dids, len(STATE.dids))))
        assert render_dialplan(shuffled) == render_dialplan(STATE)
        assert render_pjsip(shuffled) == render_pjsip(STATE)


def test_endpoint_is_tagged_with_its_tenant() -> None:
    endpoint, auth, aor = render_extension(STATE.tenants[1], STATE.extensions[0])
    assert endpoint.id == auth.id == aor.id == "acme_101"
    assert endpoint.accountcode == "ten_acme"
    assert endpoint.set_var == "__TENANT_ID=ten_acme"
    assert endpoint.context == "acme-internal"
    assert auth.username == "acme_101" and auth.md5_cred == "0" * 32


def test_cancelled_tenant_has_no_objects_and_no_contexts() -> None:
    objects = render_pjsip(STATE)
    assert not any(e.id.startswith("gone_") for e in objects.endpoints)
    assert "gone-" not in render_dialplan(STATE)


def _contexts(text: str) -> dict[str, list[str]]:
    contexts: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
            contexts[current] = []
        elif line and not line.startswith(";"):
            contexts[current].append(line)
    return contexts


def test_isolation_is_structural() -> None:
    """A tenant's contexts only include, jump to or dial its own objects (or shared announcements)."""
    contexts = _contexts(render_dialplan(STATE))
    shared = {"cp-not-configured", "cp-suspended", "cp-carrier-out", "from-carrier", "cp-admit"}
    for name, lines in contexts.items():
        if name in shared:
            continue
        prefix = name.split("-")[0]
        for line in lines:
            for target in re.findall(r"include => ([\w-]+)", line) + re.findall(r"Goto\(([\w-]+),", line):
                assert target.startswith(prefix + "-") or target in shared, (name, line)
            for endpoint in re.findall(r"PJSIP/([\w]+)", line):
                assert endpoint.startswith(prefix + "_"), (name, line)
        if name.endswith("-outbound"):
            # Fixed-length digit patterns only: no `.`/`!` can carry a non-digit towards the trunk.
            for line in lines:
                assert re.fullmatch(r"exten => _[0-9+XNZ\[\]-]+,1,Goto\([\w-]+-dial,(\+1?)?\$\{EXTEN(:3)?\},1\)",
                                    line), line
        if name.endswith("-dial"):
            # Entered only from the outbound context; its first step refuses anything but '+' and digits.
            assert lines[0].startswith("exten => _+X.,1,GotoIf($[${LEN(${FILTER(0123456789,${EXTEN:1})})}"), lines
            assert lines[1] == " same => n,Hangup(28)", lines


# The hostile dial strings of the isolation e2e, the obfuscated numbers of the toll-fraud
# report, and near-misses of the number shapes. Every one is refused before the trunk: by
# PJSIP before a channel exists (404, or 484 where the string is a proper prefix of a shape or
# an extension), or by the dial context's digits guard (cause 28 -> 484).
HOSTILE = {
    "beta_101": 404, "beta_102": 404, "beta-internal": 404, "101@beta-internal": 404, "101@beta": 404,
    "beta/101": 404, "PJSIP/beta_101": 404, "101&PJSIP/beta_101": 404, "#101": 404, "*101": 404,
    "101#": 404, "*": 484, "#": 404, "**101": 404, "_X.": 404, "_101": 404, "..": 404, "1" * 300: 404,
    "101" + "0" * 60: 404, "ü101": 404, "101ü": 404, "☎": 404, "0x101": 404,
    "101;context=beta-internal": 404, "${EXTEN}": 404, "s": 404, "i": 404, "h": 404,
    "+15015550102x": 404, "12": 484, "0101": 404, "1010": 404,
    "+1212555*0100": 404, "011*442071234567": 404, "+101": 404, "+1415555*0123": 404,
    # Asterisk skips '-' when matching, so these enter the dial context, whose guard refuses them.
    "+1212-555-0100": 484, "212-555-0100": 484, "+1-212-555-0100": 484, "+1 2125550100": 404, "+12125550100;x": 404,
    "+1212555": 484, "+": 484, "011": 484, "+19115550123": 404, "+10125550100": 404,
    "+121255501001": 404, "+2904567": 484, "+1234567890123456": 404, "0114420712345678901": 404,
    "01142071234567890123": 404,
}


@pytest.mark.parametrize(("dialled", "code"), sorted(HOSTILE.items()))
def test_each_hostile_dial_string_has_its_exact_refusal(dialled: str, code: int) -> None:
    outcome = dial(_STATE_CONTEXTS, "acme-internal", dialled, "acme_101")
    assert outcome.sip == code, outcome
    assert outcome.number is None and outcome.endpoint is None and not outcome.admitted, outcome
    if re.fullmatch(r"\+?[0-9-]+", dialled) and "-" in dialled:
        assert outcome.other == "hangup"  # the guard, not PJSIP
    assert destination(dialled) is None


NUMBERS = {
    "2125550100": "+12125550100", "12125550100": "+12125550100", "+12125550100": "+12125550100",
    "01112125550100": "+12125550100", "011442071234567": "+442071234567", "+442071234567": "+442071234567",
    "+29022222": "+29022222", "+999999999999999": "+999999999999999", "8005550199": "+18005550199",
    "+19005550123": "+19005550123",
}


@pytest.mark.parametrize(("dialled", "number"), sorted(NUMBERS.items()))
def test_a_number_reaches_the_trunk_as_admission_and_the_record_see_it(dialled: str, number: str) -> None:
    outcome = dial(_STATE_CONTEXTS, "acme-internal", dialled, "acme_101")
    assert (outcome.trunk, outcome.number) == ("carrier", number), outcome
    assert outcome.admitted == (f"ten_acme,{number}",)
    assert destination(dialled) == number


_STATE_CONTEXTS = parse(render_dialplan(STATE))


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789+*#-N ", max_size=19) | st.sampled_from([*HOSTILE, *NUMBERS]))
def test_the_rendered_dialplan_and_the_python_rule_agree(dialled: str) -> None:
    """Whatever the string, the trunk gets destination(string), and admission is asked about
    exactly that number; or the trunk gets nothing and the rule refuses the string too."""
    outcome = dial(_STATE_CONTEXTS, "acme-internal", dialled, "acme_101")
    expected = destination(dialled)
    assert outcome.number == expected, (dialled, outcome)
    assert outcome.admitted == ((f"ten_acme,{expected}",) if expected else ()), (dialled, outcome)


def test_admission_step_and_fail_policy_come_from_config() -> None:
    closed = _contexts(render_dialplan(STATE, admission=AdmissionStep.FAIL_CLOSED))["cp-admit"]
    opened = _contexts(render_dialplan(STATE, admission=AdmissionStep.FAIL_OPEN))["cp-admit"]
    # A missing astdb address is "unreachable" (the policy), never "no admission".
    for lines in (closed, opened):
        # the address is read from astdb by the AGI step itself: a missing key makes it AGI of
        # "/admit" (NOTFOUND, no answer), which falls through to the policy
        assert lines[1].startswith(" same => n,AGI(${DB(controlplane/admission)}/admit,"), lines[1]
        assert lines[2:4] == [' same => n,GotoIf($["${CP_ADMIT}" = "ok"]?done)',
                              ' same => n,GotoIf($["${CP_ADMIT}" != ""]?refuse)']
        assert not any("admission_fail" in line for line in lines)
    after = closed[[i for i, line in enumerate(closed) if "n(unreachable)" in line][0] + 1]
    assert after == " same => n,Hangup(34)"
    after = opened[[i for i, line in enumerate(opened) if "n(unreachable)" in line][0] + 1]
    assert after == " same => n,Return()"
    off = render_dialplan(STATE, admission=AdmissionStep.OFF)
    assert "cp-admit" not in off.replace("; Call admission: off", "")
    assert "Gosub(" not in off
    assert AdmissionStep.of(False, True) is AdmissionStep.OFF
    assert AdmissionStep.of(True, False) is AdmissionStep.FAIL_CLOSED
    assert AdmissionStep.of(True, True) is AdmissionStep.FAIL_OPEN
    # Off: a number still reaches the trunk as the rule says, with no admission step.
    outcome = dial(off, "acme-internal", "2125550100", "acme_101")
    assert (outcome.number, outcome.admitted) == ("+12125550100", ())


def test_suspended_tenant_refuses_with_403_and_announces_inbound() -> None:
    contexts = _contexts(render_dialplan(STATE))
    assert any("Hangup(21)" in line for line in contexts["susp-internal"])
    assert not any("Dial(" in line for line in contexts["susp-internal"])
    assert "exten => +15550000004,1,Goto(cp-suspended,s,1)" in contexts["from-carrier"]
    assert any("911" in line for line in contexts["susp-internal"]), "emergency is never blocked"


def test_unassigned_and_released_dids_fall_to_not_configured() -> None:
    carrier = _contexts(render_dialplan(STATE))["from-carrier"]
    assert not any("+15550000005" in line or "+15550000006" in line for line in carrier)
    assert carrier[-1] == "exten => _[+0-9].,1,Goto(cp-not-configured,s,1)"
    acme_inbound = _contexts(render_dialplan(STATE))["acme-inbound"]
    # assigned: its route (or the unassigned-DID behaviour) is decided in the tenant's flows context
    assert any(line.startswith(" same => n,GotoIf(${DIALPLAN_EXISTS(acme-flows,did-") for line in acme_inbound)
    assert " same => n,Goto(cp-not-configured,s,1)" in acme_inbound  # until flows say otherwise


def _big_state(tenants: int, per_tenant: int, dids: int) -> ProvisioningState:
    tenant_list = tuple(TenantState(f"ten_{i:05d}", f"t{i:05d}", TenantStatus.ACTIVE, "CNAM") for i in range(tenants))
    extensions = tuple(ExtensionState(f"ext_{i}_{n}", t.id, str(100 + n), f"User {n}", "a" * 32)
                       for i, t in enumerate(tenant_list) for n in range(per_tenant))
    from provisioning.model import DidState
    did_list = tuple(DidState(f"+1555{i:07d}", tenant_list[i % tenants].id, f"ext_{i % tenants}_0")
                     for i in range(dids))
    return ProvisioningState(tenant_list, extensions, did_list)


@pytest.mark.parametrize("scale", [(1000, 20, 5000)])
def test_render_at_scale_is_fast(scale: tuple[int, int, int]) -> None:
    state = _big_state(*scale)
    started = time.perf_counter()
    render_pjsip(state)
    render_dialplan(state)
    assert time.perf_counter() - started < 2.0


def test_display_name_change_only_touches_callerid() -> None:
    before = render_pjsip(STATE)
    renamed = replace(STATE, extensions=(replace(STATE.extensions[0], display_name="Alice Jones"),
                                         *STATE.extensions[1:]))
    after = render_pjsip(renamed)
    assert before.auths == after.auths and before.aors == after.aors
    assert [e.callerid for e in after.endpoints if e.id == "acme_101"] == ['"Alice Jones" <101>']


if __name__ == "__main__":  # regenerate the golden files, after reviewing the change
    for name, text in _rendered().items():
        (GOLDEN / name).write_text(text)
        print(f"wrote {GOLDEN / name}")
