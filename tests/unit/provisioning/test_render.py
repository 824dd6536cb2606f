"""Rendering: golden files, determinism, structural isolation, speed."""

from __future__ import annotations

import os
import random
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
from provisioning_sample import STATE

from provisioning.dialplan import render_dialplan
from provisioning.model import ExtensionState, ProvisioningState, TenantState, TenantStatus
from provisioning.pjsip import render_extension, render_pjsip, render_static_conf
from provisioning.realtime_conf import PgTarget, realtime_files

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file (UPDATE_GOLDEN=1 to accept)"


def test_dialplan_matches_golden() -> None:
    _golden("extensions_tenants.conf", render_dialplan(STATE))


def test_pjsip_matches_golden() -> None:
    _golden("pjsip_static.conf", render_static_conf(render_pjsip(STATE)))


def test_realtime_files_match_golden() -> None:
    files = realtime_files(PgTarget.from_dsn("postgresql://postgres:s3cret@127.0.0.1:5433/controlplane"))
    _golden("realtime.conf", "".join(f";; --- {name}\n{text}" for name, text in sorted(files.items())))


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
    shared = {"cp-not-configured", "cp-suspended", "cp-carrier-out", "from-carrier"}
    for name, lines in contexts.items():
        if name in shared:
            continue
        prefix = name.split("-")[0]
        for line in lines:
            for target in re.findall(r"include => ([\w-]+)", line) + re.findall(r"Goto\(([\w-]+),", line):
                assert target.startswith(prefix + "-") or target in shared, (name, line)
            for endpoint in re.findall(r"PJSIP/([\w]+)", line):
                assert endpoint.startswith(prefix + "_"), (name, line)
            # No `.`/`!` pattern may put unfiltered text into a dial string.
            if re.search(r"exten => _\S*[.!],", line) and "${EXTEN" in line:
                assert "FILTER(0123456789" in line, line


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
    assert " same => n,Goto(cp-not-configured,s,1)" in acme_inbound  # assigned, not routed


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
