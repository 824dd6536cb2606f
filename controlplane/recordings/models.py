"""Recording policies, recordings and media retention as the API takes and shows them."""

from __future__ import annotations

from datetime import datetime

import msgspec


class PolicyBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    mode: str  # always | never | on_demand (checked by the service: a 422 naming "mode")


class Policy(msgspec.Struct, kw_only=True):
    scope: str
    ref: str
    mode: str


class Recording(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    call_id: str  # the call record (GET /v1/calls/{call_id})
    scope: str
    ref: str
    started_at: datetime
    duration_s: float
    size_bytes: int


class Retention(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    voicemail_days: int
    recording_days: int
