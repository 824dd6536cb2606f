"""Records of the webhooks capability: what the RPC takes and returns, what the worker moves."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


Group = tuple[str, str]  # (endpoint_id, order_key): first attempts are made one at a time in each

# The most of a target's reply that is kept and shown (the deliveries debugger): an
# excerpt to recognise an error page, not a copy of whatever an endpoint sends back.
RESPONSE_EXCERPT = 512


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"      # not attempted yet (or its first attempt is in flight)
    FAILED = "FAILED"        # the last attempt failed; the next one is at next_attempt_at
    DELIVERED = "DELIVERED"
    DEAD = "DEAD"            # every attempt failed; no more will be made


class DisabledReason(StrEnum):
    MANUAL = "manual"
    CONSECUTIVE_FAILURES = "consecutive_failures"


class Endpoint(msgspec.Struct, frozen=True):
    id: str
    partner_id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: DisabledReason | None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime


class EndpointSecrets(msgspec.Struct, frozen=True, kw_only=True):
    signing_secret: str


class EndpointWithSecret(Endpoint, frozen=True, kw_only=True):
    """Returned at creation and at rotation only (in ``secrets``): the one time the secret is shown."""

    secrets: EndpointSecrets


class EndpointCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str
    event_types: list[str]
    description: str = ""
    enabled: bool = True


class EndpointUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str | msgspec.UnsetType = msgspec.UNSET
    event_types: list[str] | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class DeliveryView(msgspec.Struct, frozen=True):
    """One row of the deliveries debugger."""

    id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    max_attempts: int
    redelivery: bool
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    # The HTTP status of the last attempt, or None when there was no response
    # (then ``error`` says why: "Timeout", "Connection closed", "Refused: ...").
    response_status: int | None
    error: str | None
    request_body: str
    response_body: str | None  # at most RESPONSE_EXCERPT bytes of the reply
    response_truncated: bool


class Job(msgspec.Struct, frozen=True):
    """A delivery claimed by a worker, or taken from its lane: everything needed to make one attempt."""

    delivery_id: int | None  # None: a first attempt from the lane, whose row is written with its outcome
    endpoint_id: str
    event_id: str
    event_type: str
    body: bytes
    url: str
    secret_enc: bytes
    attempts: int
    max_attempts: int
    claimed_at: datetime  # database clock (with the worker's offset)
    order_key: str = ""
    manual: bool = False
    event_seq: int = 0  # the event's, and its position: what a lane delivery's row is written with
    position: int = 0


class Outcome(msgspec.Struct, frozen=True):
    """What one attempt gave."""

    job: Job
    ok: bool
    response_status: int | None
    error: str | None
    response_body: bytes | None
    response_truncated: bool
    attempted_at: datetime  # database clock
