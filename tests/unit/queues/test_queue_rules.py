"""Queues' pure rules: checks, the q-<id> lines, Asterisk's strategy names, and the AMI
events that become statistics and webhooks (only our queues', only well-formed ones)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.moh.models import check_file_name, tenant_class
from controlplane.queues.models import (QueueCreate, QueueEventKind, QueueMember, QueueRow, Strategy, check_queue,
                                        member_interface, parse_queue_event, queue_id_of, render_queue)
from provisioning.destinations import Destination, DestinationKind

Q = "7d9e2f10-55aa-4c3b-8e21-0c4b8a9d1e22"
NOW = datetime(2026, 5, 4, 14, 0, tzinfo=UTC)


def test_the_queue_waits_then_overflows() -> None:
    overflow = Destination(DestinationKind.EXTERNAL, "+14155550123")
    assert render_queue(QueueRow(Q, "acme", 120, overflow)) == [
        f"exten => q-{Q},1,Answer()",
        # the queue's recording policy (rec-q-<id>, rendered by recordings) starts here when set
        f" same => n,GosubIf(${{DIALPLAN_EXISTS(acme-flows,rec-q-{Q},1)}}?acme-flows,rec-q-{Q},1)",
        f" same => n,Queue(q-{Q},,,,120)",
        " same => n,Goto(acme-flows,out-14155550123,1)",
        " same => n,Hangup()",
    ]
    assert render_queue(QueueRow(Q, "acme", 60, None))[-1] == " same => n,Hangup()"


def test_strategies_map_to_asterisks_names() -> None:
    assert [s.asterisk for s in Strategy] == ["ringall", "rrmemory", "leastrecent", "fewestcalls"]


def test_checks_name_each_field() -> None:
    q = QueueCreate(name="Support", ring_seconds=1, max_wait_seconds=5, max_callers=-1,
                    members=[QueueMember(number="101"), QueueMember(number="10;1", penalty=200),
                             QueueMember(number="101")])
    _, errors = check_queue(q)
    assert set(errors) == {"ring_seconds", "max_wait_seconds", "max_callers", "members.1.number",
                           "members.1.penalty", "members.2.number"}


def test_member_interfaces_are_the_tenants_own_endpoints() -> None:
    assert member_interface("acme", "101") == "PJSIP/acme_101"
    with pytest.raises(ValueError):
        member_interface("acme", "101&PJSIP/other_101")


def headers(**extra: str) -> dict[str, str]:
    return {"Queue": f"q-{Q}", "Uniqueid": "1714832625.42", "CallerIDNum": "+14155550199", **extra}


def test_caller_events_are_parsed() -> None:
    joined = parse_queue_event("QueueCallerJoin", headers(Position="2"), NOW)
    assert joined is not None and (joined.kind, joined.queue_id, joined.position, joined.caller) == \
        (QueueEventKind.JOINED, Q, 2, "+14155550199")
    answered = parse_queue_event("AgentConnect", headers(MemberName="102", HoldTime="7"), NOW)
    assert answered is not None and (answered.kind, answered.member, answered.hold_seconds) == \
        (QueueEventKind.ANSWERED, "102", 7)
    abandoned = parse_queue_event("QueueCallerAbandon", headers(HoldTime="3"), NOW)
    assert abandoned is not None and abandoned.kind is QueueEventKind.ABANDONED


@pytest.mark.parametrize("name,hdrs", [
    ("QueueCallerJoin", {"Queue": "support", "Uniqueid": "1.2"}),  # not one of ours
    ("QueueCallerJoin", {"Queue": f"q-{Q}x", "Uniqueid": "1.2"}),
    ("QueueCallerJoin", {"Queue": f"q-{Q}"}),  # no caller
    ("Newchannel", {"Queue": f"q-{Q}", "Uniqueid": "1.2"}),
])
def test_other_events_are_ignored(name: str, hdrs: dict[str, str]) -> None:
    assert parse_queue_event(name, hdrs, NOW) is None


def test_hostile_header_values_are_dropped() -> None:
    e = parse_queue_event("AgentConnect", headers(MemberName="102;evil", CallerIDNum="<script>"), NOW)
    assert e is not None and (e.member, e.caller) == ("", "")
    assert queue_id_of(f"q-{Q}") == Q and queue_id_of("q-x") is None


def test_music_on_hold_class_and_file_names() -> None:
    assert tenant_class("acme") == "moh-acme"
    with pytest.raises(ValueError):
        tenant_class("acme;x")
    assert check_file_name("jazz-1") == {}
    assert check_file_name("../etc/passwd") == {"name": "1 to 40 of a-z, 0-9 and -"}
