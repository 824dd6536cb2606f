"""The pure call flow and record building: events in, actions and rated records out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cdr_ingest.callflow import (CallFlow, CallResumed, ChannelClosed, ChannelOpened, ChannelUp, DialEnded,
                                 DialStarted, Progress, ProgressKind, TenantTagged)
from cdr_ingest.cdr_rebuild import CdrRow, rebuild
from cdr_ingest.pricing import BillingProfile
from cdr_ingest.records import TenantBilling, build_record, call_record_id, terminal_event
from cdr_ingest.tiers import Tier
from provisioning.names import channel_extension

T0 = datetime(2026, 5, 4, 14, 0, tzinfo=UTC)
BILLING = TenantBilling("ten_a", "ptr_a", Tier.BUSINESS,
                        BillingProfile("p", 50_000, toll_free_per_minute=30_000, min_seconds=60))


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def outbound(flow: CallFlow, answer: bool, hold: float = 61.0) -> list:
    actions = flow.feed(ChannelOpened(at(0), "L1", "L1", "PJSIP/acme_102-01", "acme-internal", "18005550199",
                                      "102", "ten_a"))
    actions += flow.feed(DialStarted(at(0.1), "L1", "L2", "PJSIP/carrier-02", "+18005550199"))
    actions += flow.feed(ChannelOpened(at(0.1), "L1", "L2", "PJSIP/carrier-02", "from-carrier", "s", "", "ten_a"))
    if answer:
        actions += flow.feed(DialEnded(at(2), "L1", "L2", "ANSWER"))
        actions += flow.feed(ChannelUp(at(2), "L1", "L1"))
        end = 2 + hold
    else:
        actions += flow.feed(DialEnded(at(2), "L1", "L2", "BUSY"))
        end = 2.1
    actions += flow.feed(ChannelClosed(at(end), "L1", "L2", 16))
    actions += flow.feed(ChannelClosed(at(end), "L1", "L1", 16 if answer else 17))
    return actions


def test_an_answered_outbound_call_is_initiated_answered_finished_and_rated_60_6() -> None:
    actions = outbound(CallFlow(), answer=True)
    kinds = [a.kind if isinstance(a, Progress) else "finished" for a in actions]
    assert kinds == [ProgressKind.INITIATED, ProgressKind.ANSWERED, "finished"]
    summary = actions[-1].summary
    assert summary.trunk_used and not summary.inbound and summary.answered_at == at(2)
    record = build_record(summary, BILLING, channel_extension)
    assert (record.direction, record.call_class, record.answered_s, record.billable_s) == \
        ("outbound", "toll_free", 61, 66)
    assert record.retail_micros == 33_000 and record.wholesale_micros == 18_700
    assert record.callee == "+18005550199" and record.extension == "102"
    assert record.disposition == "ANSWERED" and terminal_event(record) == "call.completed"
    assert record.id == call_record_id("L1")


def test_an_unanswered_call_costs_nothing_and_fails() -> None:
    record = build_record(outbound(CallFlow(), answer=False)[-1].summary, BILLING, channel_extension)
    assert record.disposition == "BUSY" and record.retail_micros == 0 and record.wholesale_micros == 0
    assert terminal_event(record) == "call.failed"


def test_inbound_record_fields() -> None:
    flow = CallFlow()
    flow.feed(ChannelOpened(at(0), "L1", "L1", "PJSIP/carrier-01", "from-carrier", "+15015550101", "4155550100"))
    flow.feed(TenantTagged(at(0.01), "L1", "ten_a"))
    flow.feed(DialStarted(at(0.02), "L1", "L2", "PJSIP/acme_103-02", "103"))
    flow.feed(ChannelOpened(at(0.02), "L1", "L2", "PJSIP/acme_103-02", "acme-internal", "s", "", "ten_a"))
    flow.feed(DialEnded(at(1), "L1", "L2", "ANSWER"))
    flow.feed(ChannelUp(at(1), "L1", "L1"))
    flow.feed(ChannelClosed(at(3), "L1", "L1", 16))
    (done,) = flow.feed(ChannelClosed(at(3), "L1", "L2", 16))
    record = build_record(done.summary, BILLING, channel_extension)
    assert (record.direction, record.call_class, record.did, record.extension) == \
        ("inbound", "local", "+15015550101", "103")
    assert record.caller == "+14155550100" and record.billable_s == 60 and record.retail_micros == 50_000
    assert terminal_event(record) == "inbound_call.completed"


def test_internal_calls_are_free_and_calls_without_a_tenant_are_ignored() -> None:
    flow = CallFlow()
    flow.feed(ChannelOpened(at(0), "L1", "L1", "PJSIP/acme_102-01", "acme-internal", "101", "102", "ten_a"))
    flow.feed(ChannelUp(at(1), "L1", "L1"))
    (done,) = flow.feed(ChannelClosed(at(30), "L1", "L1", 16))
    record = build_record(done.summary, BILLING, channel_extension)
    assert (record.direction, record.call_class, record.retail_micros, record.wholesale_micros) == \
        ("internal", "internal", 0, 0)
    flow.feed(ChannelOpened(at(0), "X", "X", "PJSIP/sipp-01", "controlplane-test", "4711"))
    assert flow.feed(ChannelClosed(at(1), "X", "X", 16)) == []


def test_events_of_unknown_calls_are_ignored_and_resumed_calls_are_not_announced_twice() -> None:
    flow = CallFlow()
    assert flow.feed(ChannelClosed(at(1), "old", "old", 16)) == []
    channel = ChannelOpened(at(0), "L1", "L1", "PJSIP/acme_102-01", "cp-carrier-out", "+18005550199", "102",
                            "ten_a")
    acts = flow.feed(CallResumed(at(10), "L1", (channel,), up=True, started_at=at(0), answered_at=at(2),
                                 answered_sent=True, initiated_sent=True, inbound=False, dialed="18005550199",
                                 tenant_id="ten_a"))
    assert acts == []
    (done,) = flow.feed(ChannelClosed(at(63), "L1", "L1", 16))
    assert done.summary.answered_at == at(2) and done.summary.started_at == at(0)


def test_cdr_rows_rebuild_the_call() -> None:
    t = T0.timestamp()
    rows = [CdrRow("L1", "L1", t, t + 2, t + 63, "102", "+18005550199", "PJSIP/acme_102-01", "PJSIP/carrier-02",
                   "ANSWERED", "ten_a")]
    (summary,) = rebuild(rows)
    record = build_record(summary, BILLING, channel_extension)
    assert record.late and record.billable_s == 66 and record.retail_micros == 33_000
    assert rebuild([CdrRow("X", "X", t, 0, t + 1, "", "4711", "PJSIP/sipp-1", "", "ANSWERED", "")]) == []

