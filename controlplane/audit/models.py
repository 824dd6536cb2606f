"""Audit entries as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec


class Change(msgspec.Struct):
    before: Any
    after: Any


class AuditEvent(msgspec.Struct, kw_only=True):
    id: str
    partner_id: str | None
    tenant_id: str | None
    actor_type: str
    api_key_id: str | None
    acting_user_id: str | None
    action: str
    resource: str
    resource_id: str
    changes: dict[str, Change]
    request_id: str | None
    outcome: str
    refused_code: str | None
    created_at: datetime


def event_from(r: asyncpg.Record) -> AuditEvent:
    raw = r["changes"]
    return AuditEvent(id=r["id"], partner_id=r["partner_id"], tenant_id=r["tenant_id"],
                      actor_type=r["actor_type"], api_key_id=r["api_key_id"],
                      acting_user_id=r["acting_user_id"],
                      action=r["action"], resource=r["resource"], resource_id=r["resource_id"],
                      changes=msgspec.json.decode(raw, type=dict[str, Change]) if isinstance(raw, str)
                      else msgspec.convert(raw, dict[str, Change]),
                      request_id=r["request_id"], outcome=r["outcome"],
                      refused_code=r["refused_code"], created_at=r["created_at"])
