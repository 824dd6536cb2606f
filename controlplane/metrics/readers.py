"""Gauge readers over state that lives elsewhere, called at scrape time only."""

from __future__ import annotations

from collections import Counter

from cdr_ingest.callflow import CallFlow
from cdr_ingest.classify import CallClass, Direction, classify, normalize_e164
from controlplane.metrics.live import Sample


def _route(inbound: bool, dialed: str) -> tuple[str, str]:
    """Direction and class as the record will have them (cdr_ingest.records), from what is known so far."""
    if inbound:
        did = normalize_e164(dialed) or dialed
        return Direction.INBOUND.value, classify(did, callee_is_extension=False).value
    call_class = classify(dialed)
    if call_class in (CallClass.INTERNAL, CallClass.INVALID):
        return Direction.INTERNAL.value, CallClass.INTERNAL.value
    return Direction.OUTBOUND.value, call_class.value


def calls_in_progress(flow: CallFlow) -> list[Sample]:
    """Live calls by direction and call class."""
    counts = Counter(_route(inbound, dialed) for inbound, dialed in flow.live_calls())
    return [(labels, float(n)) for labels, n in counts.items()]
