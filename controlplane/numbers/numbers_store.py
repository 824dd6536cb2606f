"""SQL of a partner's numbers (the ``dids`` rows) as this capability sees them (the wallet's
SQL is ``controlplane.wallet.store``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from controlplane.shared.pagination import PageRequest, keyset
from controlplane.numbers.inventory_store import Conn
from controlplane.numbers.models import CnamStatus, E911Address, NumberKind, PhoneNumber
from e911.provider import E911Status

_SELECT = ("SELECT d.*, t.name AS tenant_name, t.default_cnam AS tenant_cnam FROM dids d"
           " LEFT JOIN tenants t ON t.id = d.tenant_id")


def number_from(r: asyncpg.Record) -> PhoneNumber:
    address = msgspec.json.decode(r["e911_address"], type=E911Address) if r["e911_address"] else None
    return PhoneNumber(
        id=r["id"], partner_id=r["partner_id"], number=r["number"], kind=NumberKind(r["kind"]),
        status=r["status"], tenant_id=r["tenant_id"], tenant_name=r["tenant_name"],
        extension_id=r["extension_id"], region=r["region"], rate_center=r["rate_center"],
        monthly_price_micros=r["monthly_micros"], setup_fee_micros=r["setup_micros"],
        billing_since=r["billing_since"],
        cnam=r["cnam"], effective_cnam=r["cnam"] or (r["tenant_cnam"] if r["tenant_id"] else None),
        cnam_status=CnamStatus(r["cnam_status"]), cnam_error=r["cnam_error"],
        e911_status=E911Status(r["e911_status"]), e911_address=address, e911_error=r["e911_error"],
        created_at=r["created_at"], updated_at=r["updated_at"])


async def insert_purchased(conn: Conn, did_id: str, partner_id: str, number: str, kind: str, status: str,
                           region: str | None, rate_center: str | None, monthly: int | None, setup: int) -> bool:
    row = await conn.fetchrow(
        "INSERT INTO dids (id, partner_id, number, status, kind, region, rate_center, monthly_micros,"
        " setup_micros, billing_since, created_at, updated_at)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9, now(), clock_timestamp(), clock_timestamp())"
        " ON CONFLICT (number) DO NOTHING RETURNING id",
        did_id, partner_id, number, status, kind, region, rate_center, monthly, setup)
    return row is not None


async def insert_granted(conn: Conn, did_id: str, partner_id: str, number: str, cnam: str | None) -> bool:
    """An operator's grant: ACTIVE, no fees; False when the number is in an inventory already."""
    row = await conn.fetchrow(
        "INSERT INTO dids (id, partner_id, number, status, cnam, created_at, updated_at)"
        " VALUES ($1,$2,$3,'ACTIVE',$4, clock_timestamp(), clock_timestamp())"
        " ON CONFLICT (number) DO NOTHING RETURNING id", did_id, partner_id, number, cnam)
    return row is not None


async def partner_exists(conn: Conn, partner_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM partners WHERE id = $1", partner_id))


async def get(conn: Conn, partner_id: str, did_id: str, *, lock: bool = False) -> PhoneNumber | None:
    if lock:
        await conn.execute("SELECT 1 FROM dids WHERE id = $1 AND partner_id = $2 FOR UPDATE", did_id, partner_id)
    row = await conn.fetchrow(_SELECT + " WHERE d.id = $1 AND d.partner_id = $2", did_id, partner_id)
    return number_from(row) if row else None


async def get_many(conn: Conn, partner_id: str, ids: Sequence[str]) -> list[PhoneNumber]:
    """In id order, locked: bulk operations on overlapping sets never deadlock."""
    await conn.execute("SELECT 1 FROM dids WHERE id = ANY($1::text[]) AND partner_id = $2 ORDER BY id"
                       " FOR UPDATE", list(ids), partner_id)
    rows = await conn.fetch(_SELECT + " WHERE d.id = ANY($1::text[]) AND d.partner_id = $2 ORDER BY d.number",
                            list(ids), partner_id)
    return [number_from(r) for r in rows]


async def by_numbers(conn: Conn, numbers: Sequence[str]) -> list[PhoneNumber]:
    rows = await conn.fetch(_SELECT + " WHERE d.number = ANY($1::text[]) ORDER BY d.number", list(numbers))
    return [number_from(r) for r in rows]


async def list_page(conn: Conn, partner_id: str, page: PageRequest, *, tenant_id: str | None,
                    status: str | None, e911_status: str | None, q: str | None,
                    tenant_ids: frozenset[str] | None) -> list[PhoneNumber]:
    args: list[Any] = [partner_id]
    where = ["d.partner_id = $1"]

    def add(sql: str, value: Any) -> None:
        args.append(value)
        where.append(sql.replace("?", f"${len(args)}"))

    if tenant_ids is not None:
        add("d.tenant_id = ANY(?::text[])", sorted(tenant_ids))
    if tenant_id:
        add("d.tenant_id = ?", tenant_id)
    if status:
        add("d.status = ?", status)
    if e911_status:
        add("d.e911_status = ?", e911_status)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        add("(d.number LIKE ? OR t.name ILIKE ?)", pattern)
    condition, order = keyset(page, "d.", args)
    if condition:
        where.append(condition)
    rows = await conn.fetch(_SELECT + " WHERE " + " AND ".join(where) + " " + order, *args)
    return [number_from(r) for r in rows]


async def assign(conn: Conn, did_id: str, tenant_id: str | None, extension_id: str | None) -> None:
    """Assigned: ACTIVE and billing (again, after a release); unassigned: RELEASED, billing stops."""
    if tenant_id is None:
        await conn.execute("UPDATE dids SET tenant_id = NULL, extension_id = NULL, status = 'RELEASED',"
                           " billing_since = NULL, released_from_tenant = NULL, released_extension = NULL,"
                           " updated_at = now() WHERE id = $1", did_id)
        return
    await conn.execute("UPDATE dids SET tenant_id = $2, extension_id = $3,"
                       " status = CASE WHEN status = 'PENDING' THEN 'PENDING' ELSE 'ACTIVE' END,"
                       " billing_since = COALESCE(billing_since, now()), released_from_tenant = NULL,"
                       " released_extension = NULL, updated_at = now() WHERE id = $1",
                       did_id, tenant_id, extension_id)


async def set_cnam(conn: Conn, did_id: str, cnam: str | None, status: CnamStatus, error: str | None) -> None:
    await conn.execute("UPDATE dids SET cnam = $2, cnam_status = $3, cnam_error = $4, updated_at = now()"
                       " WHERE id = $1", did_id, cnam, status.value, error)


async def set_cnam_status(conn: Conn, did_id: str, cnam: str | None, status: CnamStatus,
                          error: str | None) -> bool:
    """Only while the CNAM is still the one that was sent (a newer change wins)."""
    result = await conn.execute("UPDATE dids SET cnam_status = $3, cnam_error = $4, updated_at = now()"
                                " WHERE id = $1 AND cnam IS NOT DISTINCT FROM $2", did_id, cnam, status.value, error)
    return result.split()[-1] != "0"


async def set_e911(conn: Conn, did_id: str, status: E911Status, address: E911Address | None,
                   error: str | None, *, sent: E911Address | None = None) -> bool:
    """Record a registration state; with ``sent``, only if that address is still the current one."""
    encoded = msgspec.json.encode(address).decode() if address else None
    guard, args = "", [did_id, status.value, encoded, error]
    if sent is not None:
        args.append(msgspec.json.encode(sent).decode())
        guard = f" AND e911_address = ${len(args)}::jsonb"
    result = await conn.execute("UPDATE dids SET e911_status = $2, e911_address = $3::jsonb, e911_error = $4,"
                                " e911_updated_at = now(), updated_at = now() WHERE id = $1" + guard, *args)
    return result.split()[-1] != "0"


async def compliance(conn: Conn, partner_id: str, status: str | None, tenant_id: str | None
                     ) -> tuple[dict[str, int], list[asyncpg.Record]]:
    counts = {r["e911_status"]: r["n"] for r in await conn.fetch(
        "SELECT e911_status, count(*) AS n FROM dids WHERE partner_id = $1 AND ($2::text IS NULL OR"
        " tenant_id = $2) GROUP BY 1", partner_id, tenant_id)}
    rows = await conn.fetch(
        "SELECT d.id, d.number, d.tenant_id, t.name AS tenant_name, d.e911_status, d.e911_error FROM dids d"
        " LEFT JOIN tenants t ON t.id = d.tenant_id WHERE d.partner_id = $1 AND ($2::text IS NULL OR"
        " d.e911_status = $2) AND ($3::text IS NULL OR d.tenant_id = $3) ORDER BY d.number LIMIT 10000",
        partner_id, status, tenant_id)
    return counts, rows


async def tenant_ids_of(conn: Conn, tenant_id: str) -> list[str]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM dids WHERE tenant_id = $1 ORDER BY id", tenant_id)]


async def lock_tenant(conn: Conn, partner_id: str, tenant_id: str) -> str | None:
    """The tenant's status, its row locked: a cancellation cannot interleave with an assignment."""
    status = await conn.fetchval("SELECT status FROM tenants WHERE id = $1 AND partner_id = $2 FOR UPDATE",
                                 tenant_id, partner_id)
    return None if status is None else str(status)


async def extension_exists(conn: Conn, tenant_id: str, extension_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM extensions WHERE id = $1 AND tenant_id = $2",
                                    extension_id, tenant_id))


async def set_cnam_text(conn: Conn, did_id: str, cnam: str | None) -> None:
    """The CNAM alone (the deprecated ``PATCH /v1/dids`` alias; the provider is not asked)."""
    await conn.execute("UPDATE dids SET cnam = $2, updated_at = now() WHERE id = $1", did_id, cnam)
