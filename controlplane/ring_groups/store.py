"""The SQL of ring groups (table ring_groups, migration 0026)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import msgspec

from controlplane.ring_groups.models import (DestinationBody, Member, RingGroup, RingGroupRow, Strategy)
from provisioning.destinations import Destination, DestinationKind

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_MEMBERS = msgspec.json.Decoder(list[Member])


def _destination(kind: str | None, ref: str) -> DestinationBody | None:
    return None if kind is None else DestinationBody(kind=DestinationKind(kind), ref=ref)


def _group(row: asyncpg.Record) -> RingGroup:
    return RingGroup(id=str(row["id"]), tenant_id=row["tenant_id"], name=row["name"],
                     strategy=Strategy(row["strategy"]), ring_seconds=row["ring_seconds"],
                     members=_MEMBERS.decode(row["members"]),
                     no_answer=_destination(row["no_answer_kind"], row["no_answer_ref"]),
                     created_at=row["created_at"], updated_at=row["updated_at"])


async def tenant_prefix(conn: Conn, partner_id: str, tenant_id: str) -> str | None:
    """The tenant's SIP prefix when it is the partner's (and not cancelled)."""
    value = await conn.fetchval("SELECT sip_prefix FROM tenants WHERE id = $1 AND partner_id = $2"
                                " AND status <> 'CANCELLED'", tenant_id, partner_id)
    return None if value is None else str(value)


async def missing_extensions(conn: Conn, tenant_id: str, numbers: Sequence[str]) -> set[str]:
    found = await conn.fetch("SELECT number FROM extensions WHERE tenant_id = $1 AND number = ANY($2::text[])",
                             tenant_id, list(numbers))
    return set(numbers) - {r["number"] for r in found}


async def insert(conn: Conn, tenant_id: str, name: str, strategy: Strategy, ring_seconds: int,
                 members: list[Member], no_answer: Destination | None, now: datetime) -> RingGroup:
    row = await conn.fetchrow(
        """INSERT INTO ring_groups (id, tenant_id, name, strategy, ring_seconds, members, no_answer_kind,
                                    no_answer_ref, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $9) RETURNING *""",
        uuid.uuid4(), tenant_id, name, strategy.value, ring_seconds, msgspec.json.encode(members).decode(),
        None if no_answer is None else no_answer.kind.value, "" if no_answer is None else no_answer.ref, now)
    assert row is not None
    return _group(row)


async def update(conn: Conn, group: RingGroup, now: datetime) -> RingGroup:
    row = await conn.fetchrow(
        """UPDATE ring_groups SET name = $2, strategy = $3, ring_seconds = $4, members = $5::jsonb,
                  no_answer_kind = $6, no_answer_ref = $7, updated_at = $8 WHERE id = $1 RETURNING *""",
        uuid.UUID(group.id), group.name, group.strategy.value, group.ring_seconds,
        msgspec.json.encode(group.members).decode(),
        None if group.no_answer is None else group.no_answer.kind.value,
        "" if group.no_answer is None else group.no_answer.ref, now)
    assert row is not None
    return _group(row)


async def get(conn: Conn, tenant_id: str, group_id: str, *, lock: bool = False) -> RingGroup | None:
    try:
        key = uuid.UUID(group_id)
    except ValueError:
        return None
    row = await conn.fetchrow("SELECT * FROM ring_groups WHERE id = $1 AND tenant_id = $2"
                              + (" FOR UPDATE" if lock else ""), key, tenant_id)
    return None if row is None else _group(row)


async def list_for(conn: Conn, tenant_id: str, limit: int = 500) -> list[RingGroup]:
    rows = await conn.fetch("SELECT * FROM ring_groups WHERE tenant_id = $1 ORDER BY created_at, id LIMIT $2",
                            tenant_id, limit)
    return [_group(r) for r in rows]


async def delete(conn: Conn, tenant_id: str, group_id: str) -> bool:
    return bool(await conn.fetchval("DELETE FROM ring_groups WHERE id = $1 AND tenant_id = $2 RETURNING true",
                                    uuid.UUID(group_id), tenant_id))


async def exists(conn: Conn, tenant_id: str, group_id: str) -> bool:
    try:
        key = uuid.UUID(group_id)
    except ValueError:
        return False
    return bool(await conn.fetchval("SELECT true FROM ring_groups WHERE id = $1 AND tenant_id = $2",
                                    key, tenant_id))


async def rows_for(conn: Conn, tenant_ids: Sequence[str]) -> list[tuple[str, RingGroupRow]]:
    """(tenant id, what rendering needs) of every ring group of these tenants."""
    rows = await conn.fetch(
        """SELECT g.*, t.sip_prefix FROM ring_groups g JOIN tenants t ON t.id = g.tenant_id
           WHERE g.tenant_id = ANY($1::text[]) ORDER BY g.tenant_id, g.created_at, g.id""", list(tenant_ids))
    out = []
    for r in rows:
        kind = r["no_answer_kind"]
        out.append((r["tenant_id"], RingGroupRow(
            id=str(r["id"]), prefix=r["sip_prefix"], strategy=Strategy(r["strategy"]),
            ring_seconds=r["ring_seconds"], members=tuple(_MEMBERS.decode(r["members"])),
            no_answer=None if kind is None else Destination(DestinationKind(kind), r["no_answer_ref"]))))
    return out
