"""SQL of the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from controlplane.db.connection import Executor
from controlplane.shared.pagination import PageRequest, keyset

Conn = Executor


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    partner_id: str | None
    tenant_id: str | None
    actor_type: str
    api_key_id: str | None
    acting_user_id: str | None
    action: str
    resource: str
    resource_id: str
    changes: dict[str, Any]
    request_id: str | None
    # "refused": the guard answered 403 before the handler ran (refused_code: the problem's code).
    outcome: str = "succeeded"
    refused_code: str | None = None


@dataclass(frozen=True, slots=True)
class Filters:
    partner_id: str
    resource: str | None = None
    resource_id: str | None = None
    tenant_id: str | None = None
    api_key_id: str | None = None
    acting_user_id: str | None = None
    action: str | None = None
    outcome: str | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None


async def insert(conn: Conn, e: Entry) -> None:
    await conn.execute(
        "INSERT INTO audit_events (id, partner_id, tenant_id, actor_type, api_key_id, acting_user_id, action,"
        " resource, resource_id, changes, request_id, outcome, refused_code)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10::jsonb,$11,$12,$13)",
        e.id, e.partner_id, e.tenant_id, e.actor_type, e.api_key_id, e.acting_user_id, e.action, e.resource,
        e.resource_id, msgspec.json.encode(e.changes).decode(), e.request_id, e.outcome, e.refused_code)


async def list_page(conn: Conn, f: Filters, page: PageRequest) -> list[asyncpg.Record]:
    args: list[object] = [f.partner_id]
    where = ["partner_id = $1"]
    for column, value in (("resource", f.resource), ("resource_id", f.resource_id), ("tenant_id", f.tenant_id),
                          ("api_key_id", f.api_key_id), ("acting_user_id", f.acting_user_id), ("action", f.action),
                          ("outcome", f.outcome)):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    for op, bound in ((">=", f.created_from), ("<", f.created_before)):
        if bound is not None:
            args.append(bound)
            where.append(f"created_at {op} ${len(args)}")
    after, order = keyset(page, "", args)
    if after:
        where.append(after)
    return await conn.fetch(f"SELECT * FROM audit_events WHERE {' AND '.join(where)} {order}", *args)
