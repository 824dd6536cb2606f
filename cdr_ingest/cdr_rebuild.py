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


def rebuild(rows: Iterable[CdrRow], config: FlowConfig = FlowConfig()) -> list[CallSummary]:
    """One summary per linkedid that has a tenant (accountcode), marked late."""
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
        answered = [r for r in group if r.answer > 0 and r.uniqueid == first.uniqueid] or \
                   [r for r in group if r.answer > 0]
        answered_at = _at(min(r.answer for r in answered)) if answered else None
        dialed = (first.userfield or first.dst) if inbound else first.dst
        out.append(CallSummary(
            call_id=linkedid, tenant_id=tenant, inbound=inbound,
            trunk_used=not inbound and any(r.dstchannel.startswith(trunk) for r in group),
            dialed=dialed, caller_num=first.src, caller_channel=first.channel,
            answered_by=answered[0].dstchannel if answered else "",
            started_at=_at(min(r.start for r in group)), answered_at=answered_at,
            ended_at=_at(max(r.end for r in group)),
            dial_status=_STATUS.get(first.disposition, ""), hangup_cause=0, late=True))
    return out
