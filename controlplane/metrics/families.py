"""The counted metrics: defined once per process, bumped by the code that sees the fact.

Each hook site uses a child bound here at import (``.labels()`` is a dict lookup and a
lock per call; a bound child is just the lock), or a small function below that picks one.
They are created without a registry: each daemon's ``live.Metrics`` registers them in its own.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

from cdr_ingest.records import CallRecord

_FAST = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
_LAG = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_HTTP = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CALLS_RECORDED = Counter(
    "controlplane_calls_recorded", "Calls whose rated record committed, by direction, class and disposition.",
    ["direction", "call_class", "disposition"], registry=None)
CALL_RECORD_LAG = Histogram(
    "controlplane_call_record_lag_seconds",
    "Hang-up (Asterisk's time of the last Hangup) to the commit of the call's record, in seconds.",
    buckets=_LAG, registry=None)

ADMISSIONS = Counter(
    "controlplane_admissions",
    "Admission decisions over FastAGI, by outcome (admitted, or the refusal reason).",
    ["outcome"], registry=None)
ADMISSION_ERRORS = ADMISSIONS.labels("error")  # the exchange failed: the dialplan's fail policy applied
ADMISSION_SECONDS = Histogram(
    "controlplane_admission_decision_seconds",
    "Server-side admission decision time (environment read to decision).",
    buckets=_FAST, registry=None)

ASTERISK_RECONNECTS = Counter(
    "controlplane_asterisk_reconnects", "Re-logins to Asterisk after a lost connection (restart included).",
    ["link"], registry=None)

WEBHOOK_DELIVERIES = Counter(
    "controlplane_webhook_deliveries", "Webhook delivery attempts recorded, by result "
    "(delivered, failed: retried later, dead: out of attempts, lease_lost).", ["result"], registry=None)
WEBHOOK_DELIVERED = WEBHOOK_DELIVERIES.labels("delivered")
WEBHOOK_FAILED = WEBHOOK_DELIVERIES.labels("failed")
WEBHOOK_DEAD = WEBHOOK_DELIVERIES.labels("dead")
WEBHOOK_LEASE_LOST = WEBHOOK_DELIVERIES.labels("lease_lost")
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "controlplane_webhook_attempt_seconds",
    "One webhook POST, from send to the response read (or the error).",
    buckets=_HTTP, registry=None)

HTTP_REQUESTS = Histogram(
    "controlplane_http_request_seconds", "RPC requests by method, route template and status class.",
    ["method", "route", "status"], buckets=_HTTP, registry=None)

STATIC = (CALLS_RECORDED, CALL_RECORD_LAG, ADMISSIONS, ADMISSION_SECONDS, ASTERISK_RECONNECTS,
          WEBHOOK_DELIVERIES, WEBHOOK_ATTEMPT_SECONDS, HTTP_REQUESTS)

_admitted: dict[str, Counter] = {}


def admission(outcome: str, seconds: float) -> None:
    """One decision: ``outcome`` is "admitted" or the refusal reason (a bounded enum)."""
    child = _admitted.get(outcome)
    if child is None:
        child = _admitted[outcome] = ADMISSIONS.labels(outcome)
    child.inc()
    ADMISSION_SECONDS.observe(seconds)


_recorded: dict[tuple[str, str, str], Counter] = {}


def call_recorded(record: CallRecord) -> None:
    """The calls recorder's ``on_recorded`` hook: runs after the record's commit."""
    key = (record.direction, record.call_class, record.disposition)
    child = _recorded.get(key)
    if child is None:
        child = _recorded[key] = CALLS_RECORDED.labels(*key)
    child.inc()
    CALL_RECORD_LAG.observe(max(time.time() - record.ended_at.timestamp(), 0.0))
