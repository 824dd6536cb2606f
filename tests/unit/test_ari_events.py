"""ARI/AMI event parsing: payloads shaped like Asterisk 22.10 sends them (captured from
a real instance), unknown types fall back, and nothing a socket delivers can raise."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controlplane.asterisk import events as ev
from controlplane.asterisk.events import parse_ami_event, parse_ari_event

ENVELOPE = {"timestamp": "2026-11-22T04:43:07.417+0000", "asterisk_id": "02:fc:00:00:00:01",
            "application": "controlplane"}


def channel(cid: str = "1795322587.0", **over: Any) -> dict[str, Any]:
    data = {"id": cid, "name": "PJSIP/sipp-00000000", "state": "Up",
            "protocol_id": "1-13368@127.0.0.1", "caller": {"name": "sipp", "number": "sipp"},
            "connected": {"name": "", "number": ""}, "accountcode": "acct",
            "dialplan": {"context": "from-sipp", "exten": "100", "priority": 3,
                         "app_name": "Stasis", "app_data": "controlplane,a1"},
            "creationtime": "2026-11-22T04:43:07.417+0000", "language": "en"}
    data.update(over)
    return data


BRIDGE = {"id": "3a4a9e0c-f6f0-4f80-b79f-0e41c2f759cb", "technology": "simple_bridge",
          "bridge_type": "mixing", "bridge_class": "basic", "creator": "", "name": "",
          "channels": ["1795322598.2"], "creationtime": "2026-11-22T04:43:18.326+0000",
          "video_mode": "none"}


def frame(kind: str, **fields: Any) -> bytes:
    return json.dumps({"type": kind, **ENVELOPE, **fields}).encode()


def test_stasis_start_carries_channel_and_args() -> None:
    event = parse_ari_event(frame("StasisStart", args=["a1", "a2"],
                                  channel=channel(channelvars={"TENANT": "t1"})))
    assert isinstance(event, ev.StasisStart)
    assert event.type == "StasisStart" and event.application == "controlplane"
    assert event.args == ["a1", "a2"] and event.replace_channel is None
    ch = event.channel
    assert (ch.id, ch.state, ch.caller.number, ch.accountcode) == ("1795322587.0", "Up", "sipp", "acct")
    assert (ch.dialplan.context, ch.dialplan.exten, ch.dialplan.priority) == ("from-sipp", "100", 3)
    assert ch.channelvars == {"TENANT": "t1"} and event.raw is None


@pytest.mark.parametrize("cls", [ev.StasisEnd, ev.ChannelCreated, ev.ChannelStateChange])
def test_channel_only_events(cls: type[ev.AriEvent]) -> None:
    event = parse_ari_event(frame(cls.__name__, channel=channel()))
    assert type(event) is cls
    assert event.channel.name == "PJSIP/sipp-00000000"  # type: ignore[attr-defined]


def test_channel_destroyed_cause() -> None:
    event = parse_ari_event(frame("ChannelDestroyed", cause=16, cause_txt="Normal Clearing",
                                  channel=channel()))
    assert isinstance(event, ev.ChannelDestroyed)
    assert (event.cause, event.cause_txt, event.tech_cause) == (16, "Normal Clearing", None)


def test_hangup_request_with_and_without_cause() -> None:
    soft = parse_ari_event(frame("ChannelHangupRequest", cause=16, soft=True, channel=channel()))
    assert isinstance(soft, ev.ChannelHangupRequest) and soft.cause == 16 and soft.soft
    bye = parse_ari_event(frame("ChannelHangupRequest", channel=channel()))
    assert isinstance(bye, ev.ChannelHangupRequest) and bye.cause is None and not bye.soft


def test_varset_on_channel_and_global() -> None:
    on_channel = parse_ari_event(frame("ChannelVarset", variable="SIPDOMAIN",
                                       value="127.0.0.1", channel=channel()))
    assert isinstance(on_channel, ev.ChannelVarset)
    assert (on_channel.variable, on_channel.value) == ("SIPDOMAIN", "127.0.0.1")
    assert on_channel.channel is not None
    glob = parse_ari_event(frame("ChannelVarset", variable="G", value="1"))
    assert isinstance(glob, ev.ChannelVarset) and glob.channel is None


def test_channel_dialplan() -> None:
    event = parse_ari_event(frame("ChannelDialplan", dialplan_app="Stasis",
                                  dialplan_app_data="controlplane,a1", channel=channel()))
    assert isinstance(event, ev.ChannelDialplan) and event.dialplan_app == "Stasis"


def test_dial_progress() -> None:
    event = parse_ari_event(frame("Dial", dialstatus="ANSWER", forward="", dialstring="",
                                  caller=channel("1.1"), peer=channel("1.2", state="Up")))
    assert isinstance(event, ev.Dial)
    assert event.dialstatus == "ANSWER" and event.caller is not None
    assert (event.caller.id, event.peer.id, event.forwarded) == ("1.1", "1.2", None)
    originated = parse_ari_event(frame("Dial", dialstring="uas", peer=channel("1.3")))
    assert isinstance(originated, ev.Dial) and originated.caller is None


@pytest.mark.parametrize("cls", [ev.ChannelEnteredBridge, ev.ChannelLeftBridge])
def test_bridge_membership(cls: type[ev.AriEvent]) -> None:
    event = parse_ari_event(frame(cls.__name__, bridge=BRIDGE, channel=channel("1795322598.2")))
    assert type(event) is cls
    assert event.bridge.channels == ["1795322598.2"]  # type: ignore[attr-defined]
    assert event.bridge.bridge_type == "mixing"  # type: ignore[attr-defined]


def test_unknown_fields_are_ignored() -> None:
    event = parse_ari_event(frame("StasisEnd", brand_new=1, channel=channel(future={"x": 1})))
    assert isinstance(event, ev.StasisEnd)


def test_unknown_type_falls_back_with_raw() -> None:
    event = parse_ari_event(frame("BridgeCreated", bridge=BRIDGE))
    assert type(event) is ev.AriEvent
    assert event.type == "BridgeCreated" and event.application == "controlplane"
    assert event.raw is not None and event.raw["bridge"]["id"] == BRIDGE["id"]


def test_known_type_with_bad_shape_falls_back() -> None:
    event = parse_ari_event(frame("StasisStart", channel={"name": "no id"}))
    assert type(event) is ev.AriEvent and event.type == "StasisStart"
    assert event.raw is not None and event.raw["channel"] == {"name": "no id"}


@pytest.mark.parametrize("data", [b"", b"garbage", b"\xff\xfe", "[1, 2]", b"null",
                                  b'{"type": 5}', b'{"no": "type"}', b'{"type": "Dial"',
                                  "{\"type\": \"ChannelVarset\"}"])
def test_garbage_never_raises(data: bytes | str) -> None:
    event = parse_ari_event(data)
    assert isinstance(event, ev.AriEvent) and event.raw is not None


def test_str_and_bytes_parse_alike() -> None:
    data = frame("StasisEnd", channel=channel())
    assert parse_ari_event(data) == parse_ari_event(data.decode())


# ------------------------------------------------------------------------ AMI

SNAPSHOT = {"Privilege": "call,all", "Channel": "PJSIP/sipp-00000003", "ChannelState": "6",
            "ChannelStateDesc": "Up", "CallerIDNum": "sipp", "CallerIDName": "sipp",
            "ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>", "Language": "en",
            "AccountCode": "", "Context": "from-sipp", "Exten": "plain", "Priority": "1",
            "Uniqueid": "1795322606.3", "Linkedid": "1795322606.3", "content": ""}


def test_ami_hangup_typed() -> None:
    event = parse_ami_event({"Event": "Hangup", **SNAPSHOT, "Cause": "16",
                             "Cause-txt": "Normal Clearing"})
    assert isinstance(event, ev.Hangup)
    assert (event.uniqueid, event.channel_state, event.cause, event.cause_txt) == (
        "1795322606.3", 6, 16, "Normal Clearing")
    assert event.caller_id_num == "sipp" and event.headers["Privilege"] == "call,all"
    assert "content" not in event.headers


@pytest.mark.parametrize("name, cls", [("Newchannel", ev.Newchannel), ("Newstate", ev.Newstate),
                                       ("newchannel", ev.Newchannel)])
def test_ami_channel_events(name: str, cls: type[ev.AmiEvent]) -> None:
    event = parse_ami_event({"Event": name, **SNAPSHOT})
    assert type(event) is cls and event.linkedid == "1795322606.3"  # type: ignore[attr-defined]


def test_ami_dial_begin_end() -> None:
    dest = {"DestChannel": "PJSIP/uas-00000002", "DestUniqueid": "1.2", "DestLinkedid": "1.1",
            "DestChannelState": "0", "DestCallerIDNum": "dialuas"}
    begin = parse_ami_event({"Event": "DialBegin", **SNAPSHOT, **dest, "DialString": "uas"})
    assert isinstance(begin, ev.DialBegin)
    assert (begin.dest_uniqueid, begin.dial_string, begin.dest_caller_id_num) == ("1.2", "uas", "dialuas")
    end = parse_ami_event({"Event": "DialEnd", **SNAPSHOT, **dest, "DialStatus": "ANSWER"})
    assert isinstance(end, ev.DialEnd) and end.dial_status == "ANSWER"


def test_ami_cdr_cel_varset_fullybooted() -> None:
    cdr = parse_ami_event({"Event": "Cdr", "UniqueID": "1.3", "Duration": "5",
                           "BillableSeconds": "3", "Disposition": "ANSWERED",
                           "StartTime": "2026-11-22 04:43:26", "UserField": "u"})
    assert isinstance(cdr, ev.Cdr)
    assert (cdr.unique_id, cdr.duration, cdr.billable_seconds, cdr.user_field) == ("1.3", 5, 3, "u")
    cel = parse_ami_event({"Event": "CEL", "EventName": "CHAN_START", "CallerIDnum": "sipp",
                           "UniqueID": "1.3", "LinkedID": "1.3", "Userfield": "x"})
    assert isinstance(cel, ev.Cel)
    assert (cel.event_name, cel.caller_id_num, cel.linked_id, cel.user_field) == (
        "CHAN_START", "sipp", "1.3", "x")
    var = parse_ami_event({"Event": "VarSet", **SNAPSHOT, "Variable": "X", "Value": "1"})
    assert isinstance(var, ev.VarSet) and (var.variable, var.value) == ("X", "1")
    boot = parse_ami_event({"Event": "FullyBooted", "Uptime": "35", "LastReload": "7",
                            "Status": "Fully Booted"})
    assert isinstance(boot, ev.FullyBooted) and (boot.uptime, boot.last_reload) == (35, 7)


@pytest.mark.parametrize("message", [{}, {"Event": "Hangup", "Cause": "not a number"},
                                     {"Event": "Hangup", "Channel": ["a", "b"]},
                                     {"Event": "UserEvent", "UserEvent": "x"}, {"Response": "Success"}])
def test_ami_fallback_never_raises(message: dict[str, Any]) -> None:
    event = parse_ami_event(message)
    assert type(event) is ev.AmiEvent
    assert event.headers == message
