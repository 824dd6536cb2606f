"""The port-in lifecycle as a pure state machine (seed 003, appendix B).

PENDING -> SUBMITTED -> FOC_RECEIVED -> COMPLETED; SUBMITTED or FOC_RECEIVED ->
REJECTED (a reason) -> SUBMITTED again (resubmit); anything not finished ->
CANCELLED. A new FOC date may replace the previous one. Nothing leaves COMPLETED
or CANCELLED.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum


class PortStatus(StrEnum):
    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"
    FOC_RECEIVED = "FOC_RECEIVED"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


class PortAction(StrEnum):
    SUBMIT = "submit"
    FOC = "foc"
    COMPLETE = "complete"
    REJECT = "reject"
    RESUBMIT = "resubmit"
    CANCEL = "cancel"


S, A = PortStatus, PortAction
TRANSITIONS: dict[tuple[PortStatus, PortAction], PortStatus] = {
    (S.PENDING, A.SUBMIT): S.SUBMITTED,
    (S.SUBMITTED, A.FOC): S.FOC_RECEIVED,
    (S.FOC_RECEIVED, A.FOC): S.FOC_RECEIVED,
    (S.FOC_RECEIVED, A.COMPLETE): S.COMPLETED,
    (S.SUBMITTED, A.REJECT): S.REJECTED,
    (S.FOC_RECEIVED, A.REJECT): S.REJECTED,
    (S.REJECTED, A.RESUBMIT): S.SUBMITTED,
    **{(s, A.CANCEL): S.CANCELLED for s in (S.PENDING, S.SUBMITTED, S.FOC_RECEIVED, S.REJECTED)},
}
EVENTS = {S.SUBMITTED: "port_request.submitted", S.FOC_RECEIVED: "port_request.foc_received",
          S.COMPLETED: "port_request.completed", S.REJECTED: "port_request.rejected",
          S.CANCELLED: "port_request.cancelled"}


class IllegalTransition(ValueError):
    def __init__(self, status: PortStatus, action: PortAction) -> None:
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s is status)
        super().__init__(f"a {status.value} port request cannot {action.value}"
                         + (f" (allowed: {', '.join(allowed)})" if allowed else " (it is final)"))
        self.status, self.action = status, action


def transition(status: PortStatus, action: PortAction, *, foc_date: date | None = None,
               reason: str | None = None) -> PortStatus:
    """The next status; IllegalTransition, or ValueError when the action lacks its datum."""
    after = TRANSITIONS.get((status, action))
    if after is None:
        raise IllegalTransition(status, action)
    if action is A.FOC and foc_date is None:
        raise ValueError("foc_date: an FOC needs its date")
    if action is A.REJECT and not (reason and reason.strip()):
        raise ValueError("reason: a rejection needs its reason")
    return after
