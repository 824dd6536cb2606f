"""Asterisk's own CDRs (written by cdr_pgsql while we may be down) -> call summaries.

Pure. A call may have several CDRs (one per pair of parties); they share the
linkedid. The first party's rows say who called, what was dialled and when it
was answered; ``userfield`` carries the DID (set by the inbound dialplan),
since ``dst`` ends as the extension the DID was routed to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cdr_ingest.callflow import CallSummary, FlowConfig

__all__ = ["CdrRow", "rebuild"]

# CDR dispositions as the flow's dial statuses, so records.disposition() reads both alike.
_STATUS = {"BUSY": "BUSY", "NO ANSWER": "NOANSWER", "FAILED": "CHANUNAVAIL", "CONGESTION": "CONGESTION",
           "ANSWERED": "ANSWER"}


@dataclass(frozen=True, slots=True)
class CdrRow:
    linkedid: str
    uniqueid: str
    start: float
    answer: float
    end: float
    src: str
    dst: str
    channel: str
    dstchannel: str
    disposition: str
    accountcode: str
    userfield: str = ""


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _leg(row: CdrRow, linkedid: str, tenant: str, caller_num: str) -> CallSummary:
    """A carrier leg the call placed from the tenant's flows (``CallSummary.leg``): its CDR is
    the pair (dialling channel, carrier channel); keyed by the carrier channel's name, as
    the live path keys it."""
    answered = row.answer > 0
    return CallSummary(
        call_id=linkedid, tenant_id=tenant, inbound=False, trunk_used=True, dialed=row.dst,
        caller_num=caller_num, caller_channel=row.dstchannel, answered_by=row.dstchannel if answered else "",
        started_at=_at(row.start), answered_at=_at(row.answer) if answered else None, ended_at=_at(row.end),
        dial_status=_STATUS.get(row.disposition, ""), hangup_cause=0, late=True, leg=row.dstchannel)


def rebuild(rows: Iterable[CdrRow], config: FlowConfig = FlowConfig()) -> list[CallSummary]:
    """One summary per linkedid that has a tenant (accountcode), marked late; and one per
    carrier leg the call placed other than an outbound caller's own (docs/queues.md)."""
    calls: dict[str, list[CdrRow]] = {}
    for row in rows:
        calls.setdefault(row.linkedid, []).append(row)
    trunk = f"PJSIP/{config.trunk}-"
    out: list[CallSummary] = []
    for linkedid, group in calls.items():
        group.sort(key=lambda r: (r.uniqueid != linkedid, r.start))
        first = group[0]
        tenant = next((r.accountcode for r in group if r.accountcode), "")
        if not tenant:
            continue
        inbound = first.channel.startswith(trunk)
        # The caller's own trunk (an outbound call): dialled by the first channel. Any other
        # carrier channel (an inbound call's forward, a ring group's Local channel) is a leg.
        own = [r for r in group
               if r.dstchannel.startswith(trunk) and not inbound and r.channel == first.channel]
        legs: dict[str, CdrRow] = {}
        for r in group:
            if r.dstchannel.startswith(trunk) and r not in own and r.dstchannel not in legs:
                legs[r.dstchannel] = r
        answered = [r for r in group if r.answer > 0 and r.uniqueid == first.uniqueid] or \
                   [r for r in group if r.answer > 0]
        answered_at = _at(min(r.answer for r in answered)) if answered else None
        dialed = (first.userfield or first.dst) if inbound else first.dst
        out.append(CallSummary(
            call_id=linkedid, tenant_id=tenant, inbound=inbound,
            trunk_used=bool(own),
            dialed=dialed, caller_num=first.src, caller_channel=first.channel,
            answered_by=answered[0].dstchannel if answered else "",
            started_at=_at(min(r.start for r in group)), answered_at=answered_at,
            ended_at=_at(max(r.end for r in group)),
            dial_status=_STATUS.get(first.disposition, ""), hangup_cause=0, late=True))
        out += [_leg(r, linkedid, tenant, first.src) for r in legs.values()]
    return out
