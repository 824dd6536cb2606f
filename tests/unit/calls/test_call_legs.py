"""Calls that place carrier legs from the tenant's flows (a ring group's external member):
each leg is a record of its own, rated as outbound, keyed alike by the live path (AMI) and
the CDR rebuild, so it is rated once whichever path records it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cdr_ingest.callflow import (CallFlow, ChannelClosed, ChannelOpened, ChannelUp, DialEnded, DialStarted,
                                 Finished, TenantTagged)
from cdr_ingest.cdr_rebuild import CdrRow, rebuild
from cdr_ingest.pricing import BillingProfile
from cdr_ingest.records import TenantBilling, build_record, call_record_id
from cdr_ingest.tiers import Tier
from provisioning.names import channel_extension

T0 = datetime(2026, 5, 4, 14, 0, tzinfo=UTC)
BILLING = TenantBilling("ten_a", "ptr_a", Tier.BUSINESS, BillingProfile("p", 50_000, min_seconds=60))
LOCAL1, LOCAL2 = "Local/+14155550123@acme-dial-00000001;1", "Local/+14155550123@acme-dial-00000001;2"


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def ring_group_call(first: ChannelOpened) -> list[Finished]:
    """The caller reaches a ring group of 101 and +14155550123; the external member answers."""
    flow = CallFlow()
    out = flow.feed(first)
    out += flow.feed(TenantTagged(at(0), "L1", "ten_a"))
    out += flow.feed(ChannelOpened(at(0.1), "L1", "L2", "PJSIP/acme_101-02", "acme-internal", "s", "", "ten_a"))
    out += flow.feed(ChannelOpened(at(0.1), "L1", "L3", LOCAL1, "acme-dial", "+14155550123", "", "ten_a"))
    out += flow.feed(ChannelOpened(at(0.1), "L1", "L4", LOCAL2, "acme-dial", "+14155550123", "", "ten_a"))
    out += flow.feed(DialStarted(at(0.1), "L1", "L2", "PJSIP/acme_101-02", first.exten, "L1"))
    out += flow.feed(DialStarted(at(0.1), "L1", "L3", LOCAL1, first.exten, "L1"))
    out += flow.feed(ChannelOpened(at(0.2), "L1", "L5", "PJSIP/carrier-05", "from-carrier", "s", "", ""))
    out += flow.feed(DialStarted(at(0.2), "L1", "L5", "PJSIP/carrier-05", "+14155550123", "L4"))
    out += flow.feed(ChannelUp(at(3), "L1", "L5"))
    out += flow.feed(DialEnded(at(3), "L1", "L5", "ANSWER"))
    out += flow.feed(DialEnded(at(3), "L1", "L2", "CANCEL"))
    out += flow.feed(ChannelClosed(at(3), "L1", "L2", 26))
    out += flow.feed(DialEnded(at(3), "L1", "L3", "ANSWER"))
    out += flow.feed(ChannelUp(at(3), "L1", "L1"))
    for channel in ("L5", "L4", "L3", "L1"):
        out += flow.feed(ChannelClosed(at(93), "L1", channel, 16))
    return [a for a in out if isinstance(a, Finished)]


def test_an_inbound_call_to_a_ring_group_records_the_external_leg_as_outbound() -> None:
    done = ring_group_call(ChannelOpened(at(0), "L1", "L1", "PJSIP/carrier-01", "from-carrier", "+14155550100",
                                         "+12125550111"))
    assert [f.summary.leg for f in done] == ["", "PJSIP/carrier-05"]
    call, leg = (build_record(f.summary, BILLING, channel_extension) for f in done)
    assert (call.direction, call.did, call.answered_s) == ("inbound", "+14155550100", 90)
    assert (leg.direction, leg.callee, leg.caller, leg.answered_s, leg.disposition) == \
        ("outbound", "+14155550123", "+12125550111", 90, "ANSWERED")
    assert leg.linkedid == call.linkedid == "L1"
    assert (call.id, leg.id) == (call_record_id("L1"), call_record_id("L1", "PJSIP/carrier-05"))
    assert leg.retail_micros and leg.retail_micros > 0 and leg.leg == "PJSIP/carrier-05"


def test_a_phone_calling_a_ring_group_is_not_itself_billed_as_outbound() -> None:
    done = ring_group_call(ChannelOpened(at(0), "L1", "L1", "PJSIP/acme_103-01", "acme-internal", "600", "103",
                                         "ten_a"))
    call, leg = (build_record(f.summary, BILLING, channel_extension) for f in done)
    assert call.direction == "internal"  # trunk_used stays false: the carrier leg is the Local channel's
    assert (leg.direction, leg.callee, leg.extension) == ("outbound", "+14155550123", None)


def test_a_plain_outbound_call_is_still_one_record() -> None:
    flow = CallFlow()
    flow.feed(ChannelOpened(at(0), "L1", "L1", "PJSIP/acme_102-01", "acme-internal", "14155550123", "102", "ten_a"))
    flow.feed(ChannelOpened(at(0.1), "L1", "L2", "PJSIP/carrier-02", "from-carrier", "s", "", "ten_a"))
    flow.feed(DialStarted(at(0.1), "L1", "L2", "PJSIP/carrier-02", "+14155550123", "L1"))
    flow.feed(ChannelUp(at(2), "L1", "L1"))
    flow.feed(ChannelClosed(at(30), "L1", "L2", 16))
    done = [a for a in flow.feed(ChannelClosed(at(30), "L1", "L1", 16)) if isinstance(a, Finished)]
    assert [f.summary.leg for f in done] == [""] and done[0].summary.trunk_used


def test_the_cdr_rebuild_keys_the_leg_as_the_live_path_does() -> None:
    e = T0.timestamp()
    rows = [
        CdrRow("L1", "L1", e, e + 3, e + 93, "+12125550111", "+14155550100", "PJSIP/carrier-01", LOCAL1,
               "ANSWERED", "ten_a", "+14155550100"),
        CdrRow("L1", "L1", e, 0, e + 3, "+12125550111", "+14155550100", "PJSIP/carrier-01", "PJSIP/acme_101-02",
               "NO ANSWER", "ten_a", "+14155550100"),
        CdrRow("L1", "L4", e + 0.1, e + 3, e + 93, "+12125550111", "+14155550123", LOCAL2, "PJSIP/carrier-05",
               "ANSWERED", "ten_a"),
    ]
    summaries = rebuild(rows)
    assert [(s.call_id, s.leg, s.inbound) for s in summaries] == [("L1", "", True), ("L1", "PJSIP/carrier-05", False)]
    leg = build_record(summaries[1], BILLING, channel_extension)
    assert (leg.id, leg.direction, leg.answered_s) == (call_record_id("L1", "PJSIP/carrier-05"), "outbound", 90)


def test_the_cdr_rebuild_of_a_plain_outbound_call_has_no_leg() -> None:
    e = T0.timestamp()
    rows = [CdrRow("L1", "L1", e, e + 2, e + 30, "102", "14155550123", "PJSIP/acme_102-01", "PJSIP/carrier-02",
                   "ANSWERED", "ten_a")]
    (summary,) = rebuild(rows)
    assert summary.trunk_used and summary.leg == ""
