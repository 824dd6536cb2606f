"""AMI events -> call flow inputs. Pure: the adapter passes ``now`` in.

Here, in the calls capability, not in ``cdr_ingest``: the call flow is a pure core
that speaks only its own inputs (``cdr_ingest.callflow``); reading Asterisk's event
types is this adapter's job, so the core imports nothing from the daemon.

Why AMI and not ARI: AMI reports every channel of every call (ARI only those in
a Stasis application unless subscribed to all), and every AMI channel event
carries ``Linkedid`` (the call) and ``AccountCode`` (the tenant, set on each
endpoint by provisioning), so no lookup is needed to group and attribute. A carrier
call takes its tenant's accountcode in the DID's context (``NewAccountCode``). The
``TENANT_ID`` channel variable is not read: Asterisk is told not to publish variable
sets at all (stasis.conf), the dearest per-call traffic it had.
``timestampevents = yes`` gives each event Asterisk's own time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cdr_ingest.callflow import (ChannelClosed, ChannelOpened, ChannelUp, DialEnded, DialStarted, Input,
                                 TenantTagged)
from controlplane.asterisk.events import AmiEvent, DialBegin, DialEnd, Hangup, Newchannel, Newstate

__all__ = ["event_time", "to_input", "show_channels"]

_UP = 6  # AST_STATE_UP


def event_time(headers: Mapping[str, Any], now: datetime) -> datetime:
    """Asterisk's ``Timestamp`` header (epoch seconds), else ``now``."""
    raw = headers.get("Timestamp")
    if isinstance(raw, str):
        try:
            return datetime.fromtimestamp(float(raw), UTC)
        except (ValueError, OverflowError):
            pass
    return now


def to_input(event: AmiEvent, now: datetime) -> Input | None:
    """The flow input an AMI event means, or None when the flow does not care."""
    if isinstance(event, Newchannel):
        if not event.linkedid or not event.uniqueid:
            return None
        return ChannelOpened(event_time(event.headers, now), event.linkedid, event.uniqueid, event.channel,
                             event.context, event.exten, event.caller_id_num, event.account_code)
    if isinstance(event, Hangup):
        if not event.linkedid:
            return None
        return ChannelClosed(event_time(event.headers, now), event.linkedid, event.uniqueid, event.cause)
    if isinstance(event, Newstate):
        if event.channel_state != _UP or not event.linkedid:
            return None
        return ChannelUp(event_time(event.headers, now), event.linkedid, event.uniqueid)
    if isinstance(event, DialEnd):  # before DialBegin: DialEnd is a subclass of it
        linked = event.linkedid or event.dest_linkedid
        if not linked:
            return None
        return DialEnded(event_time(event.headers, now), linked, event.dest_uniqueid, event.dial_status)
    if isinstance(event, DialBegin):
        linked = event.linkedid or event.dest_linkedid
        if not linked:
            return None
        return DialStarted(event_time(event.headers, now), linked, event.dest_uniqueid, event.dest_channel,
                           event.exten, event.uniqueid)
    if event.event == "NewAccountCode":
        linked, code = _header(event.headers, "Linkedid"), _header(event.headers, "AccountCode")
        if linked and code:
            return TenantTagged(event_time(event.headers, now), linked, code)
    return None


def _header(headers: Mapping[str, Any], name: str) -> str:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), "")
    return value if isinstance(value, str) else ""


def _duration(text: str) -> timedelta:
    try:
        h, m, s = (int(x) for x in text.split(":"))
    except ValueError:
        return timedelta(0)
    return timedelta(hours=h, minutes=m, seconds=s)


def show_channels(messages: Iterable[Mapping[str, Any]], now: datetime
                  ) -> dict[str, tuple[list[ChannelOpened], bool, datetime]]:
    """``CoreShowChannels`` replies grouped by call: its channels, whether the
    first channel is up, and the earliest start (now - Duration)."""
    calls: dict[str, tuple[list[ChannelOpened], bool, datetime]] = {}
    for msg in messages:
        if _header(msg, "Event") != "CoreShowChannel":
            continue
        linked, unique = _header(msg, "Linkedid"), _header(msg, "Uniqueid")
        if not linked or not unique:
            continue
        started = now - _duration(_header(msg, "Duration"))
        channel = ChannelOpened(started, linked, unique, _header(msg, "Channel"), _header(msg, "Context"),
                                _header(msg, "Exten"), _header(msg, "CallerIDNum"),
                                _header(msg, "AccountCode"))
        channels, up, first = calls.get(linked, ([], False, started))
        channels.append(channel)
        if unique == linked:
            up = _header(msg, "ChannelState") == str(_UP)
        calls[linked] = (channels, up, min(first, started))
    return calls
