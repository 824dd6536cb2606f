"""controlplane.voicemail.render: a tenant's extension/voicemail/recording lines, and what it refuses."""

from __future__ import annotations

import re

import pytest

from controlplane.voicemail.render import (RecordingMode, RecordingScope, ScopedPolicy, TenantSection, UnsafeValue,
                                           lines, recording_hook)

TENANT = "ten_0123456789abcdef"
DIR = f"/srv/controlplane/x/spool/media/{TENANT}/recording"


def section(*policies: ScopedPolicy, prefix: str = "acme", tenant: str = TENANT, directory: str = DIR) -> TenantSection:
    return TenantSection(tenant, prefix, directory, tuple(policies))


def test_every_line_is_one_dialplan_line_of_the_tenant_only() -> None:
    text = lines(section(ScopedPolicy(RecordingScope.EXTENSION, "101", RecordingMode.ALWAYS),
                         ScopedPolicy(RecordingScope.DID, "+14155550100", RecordingMode.ON_DEMAND),
                         ScopedPolicy(RecordingScope.QUEUE, "3f1c2a9e-8d7b-4c6a-9e5f-0a1b2c3d4e5f",
                                      RecordingMode.NEVER)))
    for line in text:
        assert "\n" not in line
        assert line.startswith(("exten => ", " same => n", "; ")), line
        if not line.startswith(";"):  # a ";" would start a comment; a line starting "[" a context
            assert ";" not in line
            assert "[" not in re.sub(r"\$\[|_(\[[a-z]\])+\.", "", line), line
    body = "\n".join(text)
    # only this tenant's phones and boxes are named
    assert set(re.findall(r"PJSIP/([a-z0-9]+)_", body)) == {"acme"}
    assert set(re.findall(r"@([a-z0-9-]+)", body)) == {"acme-vm"}
    assert "exten => ext-101,1,Set(CP_REC=always)" in body
    assert "exten => rec-did-14155550100,1,Set(CP_REC=on_demand)" in body
    # a "never" policy of a queue sets the mode and starts nothing
    never = body.split("exten => rec-q-3f1c2a9e-8d7b-4c6a-9e5f-0a1b2c3d4e5f,1,Set(CP_REC=never)")[1]
    assert never.splitlines()[1] == " same => n,Return()"


def test_patterns_spell_their_letters_in_brackets() -> None:
    """Asterisk drops '-' from patterns and reads x/n/z as digit classes: _ext-X. would never match."""
    patterns = [line.split(",", 1)[0] for line in lines(section()) if line.startswith("exten => _")]
    assert patterns == ["exten => _[e][x][t].", "exten => _[r][i][n][g].", "exten => _[v][m]."]


def test_pin_retrieval_names_only_the_callers_own_box_and_reports_each_attempt() -> None:
    body = "\n".join(lines(section()))
    vmmain = body.split("exten => vmmain,1,")[1].split("; recording")[0]
    assert "${CHANNEL(endpoint)}" in vmmain and '"${CP_VMID:0:5}" = "acme_"' in vmmain
    assert "Set(CP_BOX=${CP_VMID:5})" in vmmain
    assert "VoiceMailMain(${CP_BOX}@acme-vm,s)" in vmmain
    assert "Read(CP_PIN" in vmmain and "Result: fail" in vmmain and "Result: ok" in vmmain
    assert vmmain.index("locked)})") < vmmain.index("Read(CP_PIN")  # the lock is read before a PIN is asked


@pytest.mark.parametrize("bad", [
    dict(prefix="acme;evil"), dict(prefix="ACME"), dict(prefix="a\nb"), dict(tenant="ten_x,1"),
    dict(tenant="ten]x"), dict(directory="/srv/a b"), dict(directory="/srv/x;y"), dict(directory="relative"),
    dict(directory="/srv/x\n[evil]"),
])
def test_unsafe_section_values_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(UnsafeValue):
        lines(section(**bad))


@pytest.mark.parametrize(("scope", "ref"), [
    (RecordingScope.EXTENSION, "101,1"), (RecordingScope.EXTENSION, "1"), (RecordingScope.DID, "+1415;5"),
    (RecordingScope.DID, "14155550100"), (RecordingScope.QUEUE, "not-a-uuid"),
    (RecordingScope.QUEUE, "3f1c2a9e-8d7b-4c6a-9e5f-0a1b2c3d4e5f\n"),
])
def test_policy_refs_of_the_wrong_shape_are_refused(scope: RecordingScope, ref: str) -> None:
    with pytest.raises(UnsafeValue):
        lines(section(ScopedPolicy(scope, ref, RecordingMode.ALWAYS)))


def test_recording_hook() -> None:
    assert recording_hook("acme", RecordingScope.DID, "+14155550100") == (
        "GosubIf(${DIALPLAN_EXISTS(acme-flows,rec-did-14155550100,1)}?acme-flows,rec-did-14155550100,1)")
    with pytest.raises(UnsafeValue):
        recording_hook("acme", RecordingScope.DID, "+1;Dial(x)")
    with pytest.raises(UnsafeValue):
        recording_hook("acme", RecordingScope.EXTENSION, "101")
