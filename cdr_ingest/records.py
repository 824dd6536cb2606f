"""A finished call -> its rated call record. Pure: the tenant's billing context is passed in.

Seconds are counted the way carriers do: a started second counts (61.02 s -> 62),
both for duration and answered time; increments and minimums are the rate's job.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

import msgspec

from cdr_ingest.callflow import CallSummary
from cdr_ingest.classify import CallClass, Direction, classify, normalize_e164, rating_digits
from cdr_ingest.cycles import Period, period_of
from cdr_ingest.pricing import BillingProfile, price_call
from cdr_ingest.rates import RateDeck
from cdr_ingest.tiers import DEFAULT_SCHEDULE, Tier, TierSchedule

__all__ = ["Disposition", "PricingSpan", "TenantBilling", "CallRecord", "call_record_id", "disposition", "build_record",
           "ExtensionOf", "terminal_event", "progress_event", "CallProgress",
           "progress_view"]


class Disposition(StrEnum):
    ANSWERED = "ANSWERED"
    NO_ANSWER = "NO ANSWER"
    BUSY = "BUSY"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class PricingSpan:
    """The tenant's pricing from ``since`` until the next span: its profile (with the
    tenant's overrides folded in) and the day its periods start on (cdr_ingest.cycles)."""

    since: datetime
    profile: BillingProfile | None
    anchor_day: int = 1


@dataclass(frozen=True, slots=True)
class TenantBilling:
    """What rating needs to know about a tenant, loaded by the service layer."""

    tenant_id: str
    partner_id: str
    tier: Tier
    # The pricing when no span covers a call (a tenant without an assigned profile).
    profile: BillingProfile | None
    wholesale_deck: RateDeck | None = None
    timezone: str = "UTC"
    anchor_day: int = 1  # usage counts by the tenant's billing period (cdr_ingest.cycles)
    # The partner's dated tier prices (operator changes, an Enterprise contract: controlplane.account).
    schedule: TierSchedule = DEFAULT_SCHEDULE
    # Effective-dated pricing, oldest first: a call is priced by the span in force at its start.
    spans: tuple[PricingSpan, ...] = ()

    def profile_at(self, at: datetime) -> BillingProfile | None:
        """The span in force at ``at``; the first one also prices what started before it
        (a record of a call that began while the tenant was being created)."""
        found: PricingSpan | None = self.spans[0] if self.spans else None
        for span in self.spans:
            if span.since > at:
                break
            found = span
        return self.profile if found is None else found.profile

    def period(self, at: datetime) -> Period:
        return period_of(at, self.timezone, [(s.since, s.anchor_day) for s in self.spans], self.anchor_day)

    def cycle(self, at: datetime) -> date:
        return self.period(at).key


class CallRecord(msgspec.Struct, kw_only=True):
    """One rated call, as stored, listed, exported and sent in ``call.completed``."""

    id: str
    linkedid: str
    tenant_id: str
    partner_id: str
    direction: str
    caller: str
    callee: str
    did: str | None
    extension: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    duration_s: int
    answered_s: int
    billable_s: int
    wholesale_billable_s: int
    disposition: str
    hangup_cause: int
    call_class: str
    wholesale_micros: int | None
    retail_micros: int | None
    wholesale_rate_id: str | None
    retail_rate_id: str | None
    notes: list[str] = []
    late: bool = False
    # "" for the call itself; a carrier leg's channel name for a leg the call placed from the
    # tenant's flows, recorded and rated as an outbound call of its own (docs/queues.md).
    leg: str = ""


def call_record_id(linkedid: str, leg: str = "") -> str:
    """Derived from the linkedid (and the leg), so progress events and the record agree
    without a lookup, and each leg's record has one id however often it is ingested."""
    key = linkedid if not leg else f"{linkedid}/{leg}"
    return "call_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def _seconds(start: datetime, end: datetime) -> int:
    return max(0, math.ceil((end - start).total_seconds() - 1e-6))


_DIAL_STATUS = {"BUSY": Disposition.BUSY, "NOANSWER": Disposition.NO_ANSWER, "CANCEL": Disposition.CANCELLED,
                "CONGESTION": Disposition.FAILED, "CHANUNAVAIL": Disposition.FAILED}
_CAUSES = {17: Disposition.BUSY, 18: Disposition.NO_ANSWER, 19: Disposition.NO_ANSWER,
           16: Disposition.CANCELLED, 0: Disposition.CANCELLED, 127: Disposition.CANCELLED}


def disposition(summary: CallSummary) -> Disposition:
    if summary.answered_at is not None:
        return Disposition.ANSWERED
    found = _DIAL_STATUS.get(summary.dial_status)
    if found is not None:
        return found
    return _CAUSES.get(summary.hangup_cause, Disposition.FAILED)


# A channel name -> the tenant extension it belongs to, None for a trunk's or anything else.
# Given by the caller: the names are provisioning's (provisioning.names.channel_extension),
# a layer this core does not import.
ExtensionOf = Callable[[str], str | None]


def _route(summary: CallSummary) -> tuple[Direction, CallClass, str | None]:
    """Direction, class and the DID (inbound) of a call."""
    if summary.inbound:
        did = normalize_e164(summary.dialed) or summary.dialed
        return Direction.INBOUND, classify(did, callee_is_extension=False), did
    dialed_class = classify(summary.dialed)
    if summary.trunk_used or dialed_class not in (CallClass.INTERNAL, CallClass.INVALID):
        return Direction.OUTBOUND, dialed_class, None
    return Direction.INTERNAL, CallClass.INTERNAL, None


def build_record(summary: CallSummary, billing: TenantBilling, extension_of: ExtensionOf,
                 included_used_s: int = 0) -> CallRecord:
    """``included_used_s``: billable seconds of the call's period already in its included minutes."""
    direction, call_class, did = _route(summary)
    answered_s = _seconds(summary.answered_at, summary.ended_at) if summary.answered_at else 0
    number = did if direction is Direction.INBOUND else summary.dialed
    digits = rating_digits(number) if number else None
    notes: list[str] = []
    in_force = billing.profile_at(summary.started_at)
    if in_force is None and call_class not in (CallClass.INTERNAL, CallClass.EMERGENCY):
        notes.append("no_billing_profile")
    profile = in_force or BillingProfile("none", 0)
    price = price_call(call_class=call_class, direction=direction, answered_s=answered_s,
                       start=summary.started_at, tier=billing.tier, profile=profile, number_digits=digits,
                       wholesale_deck=billing.wholesale_deck, schedule=billing.schedule,
                       included_left_s=max(0, profile.included_minutes * 60 - included_used_s))
    wholesale, retail = price.wholesale, price.retail
    if in_force is None and retail is not None and retail.amount == 0 and answered_s:
        retail = None
    notes.extend(n.value for n in price.notes)
    if direction is Direction.INBOUND:
        caller, callee = normalize_e164(summary.caller_num) or summary.caller_num, did or summary.dialed
        extension = extension_of(summary.answered_by)
    else:
        caller = summary.caller_num
        callee = (normalize_e164(summary.dialed) or summary.dialed) if direction is Direction.OUTBOUND \
            else summary.dialed
        extension = extension_of(summary.caller_channel)
    return CallRecord(
        id=call_record_id(summary.call_id, summary.leg), linkedid=summary.call_id,
        tenant_id=billing.tenant_id, partner_id=billing.partner_id, direction=direction.value, caller=caller,
        callee=callee, did=did,
        extension=extension, started_at=summary.started_at, answered_at=summary.answered_at,
        ended_at=summary.ended_at, duration_s=_seconds(summary.started_at, summary.ended_at),
        answered_s=answered_s, billable_s=retail.billable_seconds if retail else 0,
        wholesale_billable_s=wholesale.billable_seconds if wholesale else 0,
        disposition=disposition(summary).value, hangup_cause=summary.hangup_cause,
        call_class=call_class.value, wholesale_micros=wholesale.amount if wholesale else None,
        retail_micros=retail.amount if retail else None,
        wholesale_rate_id=wholesale.rate_id if wholesale else None,
        retail_rate_id=retail.rate_id if retail else None, notes=notes, late=summary.late, leg=summary.leg)


def terminal_event(record: CallRecord) -> str:
    """call.completed / call.failed, inbound_call.completed / inbound_call.abandoned."""
    answered = record.disposition == Disposition.ANSWERED.value
    if record.direction == Direction.INBOUND.value:
        return "inbound_call.completed" if answered else "inbound_call.abandoned"
    return "call.completed" if answered else "call.failed"


def progress_event(inbound: bool, answered: bool) -> str:
    if inbound:
        return "inbound_call.answered" if answered else "inbound_call.ringing"
    return "call.answered" if answered else "call.initiated"


class CallProgress(msgspec.Struct, kw_only=True):
    """The call as known while it is still up (call.initiated, *.answered, ringing)."""

    id: str
    linkedid: str
    tenant_id: str
    direction: str
    caller: str
    callee: str
    did: str | None
    started_at: datetime
    answered_at: datetime | None = None


def progress_view(call_id: str, tenant_id: str, inbound: bool, dialed: str, caller_num: str,
                  started_at: datetime, answered_at: datetime | None) -> CallProgress:
    if inbound:
        did = normalize_e164(dialed) or dialed
        return CallProgress(id=call_record_id(call_id), linkedid=call_id, tenant_id=tenant_id,
                            direction=Direction.INBOUND.value,
                            caller=normalize_e164(caller_num) or caller_num, callee=did, did=did,
                            started_at=started_at, answered_at=answered_at)
    internal = classify(dialed) in (CallClass.INTERNAL, CallClass.INVALID)
    return CallProgress(id=call_record_id(call_id), linkedid=call_id, tenant_id=tenant_id,
                        direction=(Direction.INTERNAL if internal else Direction.OUTBOUND).value,
                        caller=caller_num, callee=dialed if internal else normalize_e164(dialed) or dialed,
                        did=None, started_at=started_at, answered_at=answered_at)
