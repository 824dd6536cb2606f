"""Typed views of the Asterisk events the control plane acts on (ARI JSON, AMI headers).

Parsing never raises: an event we do not model, or one whose shape surprises us,
comes back as the generic ``AriEvent``/``AmiEvent`` with its raw content, so a new
Asterisk version or a malformed frame can never stop the event loop.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

# --------------------------------------------------------------------------- ARI


class CallerId(msgspec.Struct, kw_only=True, frozen=True):
    name: str = ""
    number: str = ""


class DialplanCep(msgspec.Struct, kw_only=True, frozen=True):
    context: str = ""
    exten: str = ""
    priority: int = 0
    app_name: str = ""
    app_data: str = ""


class Channel(msgspec.Struct, kw_only=True, frozen=True):
    """ARI's Channel model. ``id`` is Asterisk's uniqueid (AMI ``Uniqueid``)."""

    id: str
    name: str = ""
    state: str = ""
    protocol_id: str = ""
    caller: CallerId = CallerId()
    connected: CallerId = CallerId()
    accountcode: str = ""
    dialplan: DialplanCep = DialplanCep()
    creationtime: str = ""
    language: str = ""
    channelvars: dict[str, str] = {}
    caller_rdnis: str = ""
    tenantid: str = ""


class Bridge(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    technology: str = ""
    bridge_type: str = ""
    bridge_class: str = ""
    creator: str = ""
    name: str = ""
    channels: list[str] = []
    creationtime: str = ""
    video_mode: str = ""


class AriEvent(msgspec.Struct, kw_only=True, frozen=True):
    """Any ARI event. Instances of this exact class are the fallback: ``raw`` holds
    the decoded JSON object (or ``{"invalid": <text>}`` for a frame that was not one).
    Typed subclasses leave ``raw`` as None."""

    type: str
    timestamp: str = ""
    application: str = ""
    asterisk_id: str = ""
    raw: dict[str, Any] | None = None


class StasisStart(AriEvent, kw_only=True, frozen=True):
    channel: Channel
    args: list[str] = []
    replace_channel: Channel | None = None


class StasisEnd(AriEvent, kw_only=True, frozen=True):
    channel: Channel


class ChannelCreated(AriEvent, kw_only=True, frozen=True):
    channel: Channel


class ChannelDestroyed(AriEvent, kw_only=True, frozen=True):
    channel: Channel
    cause: int = 0
    cause_txt: str = ""
    tech_cause: int | None = None


class ChannelStateChange(AriEvent, kw_only=True, frozen=True):
    channel: Channel


class ChannelVarset(AriEvent, kw_only=True, frozen=True):
    """``channel`` is None when a global variable was set."""

    variable: str
    value: str = ""
    channel: Channel | None = None


class ChannelHangupRequest(AriEvent, kw_only=True, frozen=True):
    """``cause`` is absent when the hang-up came from the far end's BYE."""

    channel: Channel
    cause: int | None = None
    soft: bool = False
    tech_cause: int | None = None


class ChannelDialplan(AriEvent, kw_only=True, frozen=True):
    channel: Channel
    dialplan_app: str = ""
    dialplan_app_data: str = ""


class Dial(AriEvent, kw_only=True, frozen=True):
    """One dial progress step; ``dialstatus`` is "" at the start, then RINGING, ANSWER..."""

    peer: Channel
    caller: Channel | None = None
    forwarded: Channel | None = None
    forward: str = ""
    dialstring: str = ""
    dialstatus: str = ""


class ChannelEnteredBridge(AriEvent, kw_only=True, frozen=True):
    bridge: Bridge
    channel: Channel


class ChannelLeftBridge(AriEvent, kw_only=True, frozen=True):
    bridge: Bridge
    channel: Channel


ARI_EVENT_TYPES: dict[str, type[AriEvent]] = {
    cls.__name__: cls
    for cls in (StasisStart, StasisEnd, ChannelCreated, ChannelDestroyed, ChannelStateChange,
                ChannelVarset, ChannelHangupRequest, ChannelDialplan, Dial,
                ChannelEnteredBridge, ChannelLeftBridge)
}


class _Envelope(msgspec.Struct):
    type: str


_envelope = msgspec.json.Decoder(_Envelope)
_decoders = {name: msgspec.json.Decoder(cls) for name, cls in ARI_EVENT_TYPES.items()}
_any = msgspec.json.Decoder()


def parse_ari_event(data: bytes | str) -> AriEvent:
    """Decode one WebSocket frame into its typed event, else the generic ``AriEvent``.

    Two cheap passes (type first, then the struct) so unknown types cost one skim.
    """
    try:
        kind = _envelope.decode(data).type
        decoder = _decoders.get(kind)
        if decoder is not None:
            return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    return _fallback(data)


def _fallback(data: bytes | str) -> AriEvent:
    try:
        obj = _any.decode(data)
    except msgspec.DecodeError:
        shown = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        return AriEvent(type="", raw={"invalid": shown[:2000]})
    if not isinstance(obj, dict):
        return AriEvent(type="", raw={"invalid": obj})
    kind = obj.get("type")

    def text(key: str) -> str:
        value = obj.get(key)
        return value if isinstance(value, str) else ""

    return AriEvent(type=kind if isinstance(kind, str) else "", timestamp=text("timestamp"),
                    application=text("application"), asterisk_id=text("asterisk_id"), raw=obj)


# --------------------------------------------------------------------------- AMI
# AMI headers are spelt inconsistently (CallerIDNum, CallerIDnum, UniqueID, Uniqueid,
# Cause-txt). Keys are folded to lower case without "-"/"_", and field names are
# matched after removing "_", so ``caller_id_num`` reads any of those spellings.


def _fold(name: str) -> str:
    return name.replace("_", "")


class AmiEvent(msgspec.Struct, kw_only=True, frozen=True, rename=_fold):
    """Any AMI event. ``headers`` keeps every header as sent (repeated ones as lists),
    since AMI adds fields across versions; the exact class is the fallback."""

    event: str
    headers: dict[str, Any] = {}


class _ChannelSnapshot(AmiEvent, kw_only=True, frozen=True):
    channel: str = ""
    channel_state: int = 0
    channel_state_desc: str = ""
    caller_id_num: str = ""
    caller_id_name: str = ""
    connected_line_num: str = ""
    connected_line_name: str = ""
    language: str = ""
    account_code: str = ""
    context: str = ""
    exten: str = ""
    priority: str = ""
    uniqueid: str = ""
    linkedid: str = ""


class FullyBooted(AmiEvent, kw_only=True, frozen=True):
    status: str = ""
    uptime: int = 0
    last_reload: int = 0


class Newchannel(_ChannelSnapshot, kw_only=True, frozen=True):
    pass


class Newstate(_ChannelSnapshot, kw_only=True, frozen=True):
    pass


class Hangup(_ChannelSnapshot, kw_only=True, frozen=True):
    cause: int = 0
    cause_txt: str = ""


class DialBegin(_ChannelSnapshot, kw_only=True, frozen=True):
    """Caller fields are unprefixed (empty for an originate), the callee is ``dest_*``."""

    dest_channel: str = ""
    dest_channel_state: int = 0
    dest_caller_id_num: str = ""
    dest_caller_id_name: str = ""
    dest_context: str = ""
    dest_exten: str = ""
    dest_uniqueid: str = ""
    dest_linkedid: str = ""
    dial_string: str = ""


class DialEnd(DialBegin, kw_only=True, frozen=True):
    dial_status: str = ""
    forward: str = ""


class Cdr(AmiEvent, kw_only=True, frozen=True):
    account_code: str = ""
    source: str = ""
    destination: str = ""
    destination_context: str = ""
    caller_id: str = ""
    channel: str = ""
    destination_channel: str = ""
    last_application: str = ""
    last_data: str = ""
    start_time: str = ""
    answer_time: str = ""
    end_time: str = ""
    duration: int = 0
    billable_seconds: int = 0
    disposition: str = ""
    ama_flags: str = ""
    unique_id: str = ""
    user_field: str = ""


class Cel(AmiEvent, kw_only=True, frozen=True):
    event_name: str = ""
    account_code: str = ""
    caller_id_num: str = ""
    caller_id_name: str = ""
    caller_id_ani: str = ""
    caller_id_rdnis: str = ""
    caller_id_dnid: str = ""
    exten: str = ""
    context: str = ""
    channel: str = ""
    application: str = ""
    app_data: str = ""
    event_time: str = ""
    ama_flags: str = ""
    unique_id: str = ""
    linked_id: str = ""
    user_field: str = ""
    peer: str = ""
    peer_account: str = ""
    extra: str = ""


class VarSet(_ChannelSnapshot, kw_only=True, frozen=True):
    """Channel fields are empty for a global variable."""

    variable: str = ""
    value: str = ""


AMI_EVENT_TYPES: dict[str, type[AmiEvent]] = {
    cls.__name__.lower(): cls
    for cls in (FullyBooted, Newchannel, Newstate, Hangup, DialBegin, DialEnd, Cdr, Cel, VarSet)
}


@functools.lru_cache(maxsize=4096)
def _fold_header(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "")


def parse_ami_event(message: Mapping[str, Any]) -> AmiEvent:
    """Typed view of an AMI event (a panoramisk ``Message`` or any mapping); never raises."""
    headers = {str(k): v for k, v in message.items() if k != "content"}
    name = str(headers.get("Event") or next(
        (v for k, v in headers.items() if k.lower() == "event"), ""))
    cls = AMI_EVENT_TYPES.get(name.lower())
    if cls is not None:
        folded: dict[str, Any] = {_fold_header(k): v for k, v in headers.items()}
        folded["event"], folded["headers"] = name, headers
        try:
            return msgspec.convert(folded, cls, strict=False)
        except msgspec.ValidationError:
            pass
    return AmiEvent(event=name, headers=headers)


AriHandler = Callable[[AriEvent], Awaitable[None]]
AmiHandler = Callable[[AmiEvent], Awaitable[None] | None]
