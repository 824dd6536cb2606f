"""SQL of port-in requests and their documents."""

from __future__ import annotations

from datetime import date

import asyncpg
import msgspec

from controlplane.numbers.inventory_store import Conn
from controlplane.numbers.models import E911Address, PortDocument, PortRequest
from controlplane.numbers.porting import PortStatus


def port_from(r: asyncpg.Record, docs: list[asyncpg.Record]) -> PortRequest:
    return PortRequest(
        id=r["id"], partner_id=r["partner_id"], tenant_id=r["tenant_id"], numbers=list(r["numbers"]),
        losing_carrier=r["losing_carrier"], account_holder=r["account_holder"], account_number=r["account_number"],
        has_pin=r["pin_sealed"] is not None,
        service_address=msgspec.json.decode(r["service_address"], type=E911Address),
        desired_date=r["desired_date"], foc_date=r["foc_date"], status=PortStatus(r["status"]),
        reject_reason=r["reject_reason"], created_at=r["created_at"], updated_at=r["updated_at"],
        documents=[PortDocument(id=d["id"], kind=d["kind"], filename=d["filename"], content_type=d["content_type"],
                                size=d["size"], created_at=d["created_at"]) for d in docs])


async def insert(conn: Conn, port_id: str, partner_id: str, tenant_id: str, numbers: list[str], carrier: str,
                 holder: str, account: str, pin_sealed: bytes | None, address: E911Address,
                 desired: date | None) -> None:
    await conn.execute(
        "INSERT INTO port_requests (id, partner_id, tenant_id, numbers, losing_carrier, account_holder,"
        " account_number, pin_sealed, service_address, desired_date, status)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10,'PENDING')",
        port_id, partner_id, tenant_id, numbers, carrier, holder, account, pin_sealed,
        msgspec.json.encode(address).decode(), desired)


async def get(conn: Conn, partner_id: str, port_id: str, *, lock: bool = False) -> PortRequest | None:
    row = await conn.fetchrow("SELECT * FROM port_requests WHERE id = $1 AND partner_id = $2"
                              + (" FOR UPDATE" if lock else ""), port_id, partner_id)
    if row is None:
        return None
    docs = await conn.fetch("SELECT id, kind, filename, content_type, size, created_at FROM port_documents"
                            " WHERE port_id = $1 ORDER BY created_at, id", port_id)
    return port_from(row, docs)


async def sealed_pin(conn: Conn, port_id: str) -> bytes | None:
    value = await conn.fetchval("SELECT pin_sealed FROM port_requests WHERE id = $1", port_id)
    return bytes(value) if value is not None else None


async def list_for(conn: Conn, partner_id: str, status: str | None) -> list[PortRequest]:
    rows = await conn.fetch("SELECT * FROM port_requests WHERE partner_id = $1 AND ($2::text IS NULL OR"
                            " status = $2) ORDER BY created_at, id LIMIT 500", partner_id, status)
    return [port_from(r, []) for r in rows]


async def update_status(conn: Conn, port_id: str, status: PortStatus, *, foc_date: date | None = None,
                        reason: str | None = None, carrier_ref: str | None = None) -> None:
    await conn.execute(
        "UPDATE port_requests SET status = $2, foc_date = COALESCE($3, foc_date), reject_reason = $4,"
        " carrier_ref = COALESCE($5, carrier_ref), updated_at = clock_timestamp() WHERE id = $1",
        port_id, status.value, foc_date, reason, carrier_ref)


async def carrier_ref(conn: Conn, port_id: str) -> str | None:
    ref: str | None = await conn.fetchval("SELECT carrier_ref FROM port_requests WHERE id = $1", port_id)
    return ref


async def add_document(conn: Conn, doc_id: str, port_id: str, kind: str, filename: str, content_type: str,
                       content: bytes, sha256: bytes) -> None:
    await conn.execute(
        "INSERT INTO port_documents (id, port_id, kind, filename, content_type, size, sha256, content)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8)", doc_id, port_id, kind, filename, content_type, len(content),
        sha256, content)


async def insert_ported_did(conn: Conn, did_id: str, partner_id: str, number: str) -> bool:
    """The ported number, in the partner's inventory; its assignment is assignment.change's."""
    row = await conn.fetchrow(
        "INSERT INTO dids (id, partner_id, number, status, kind, billing_since, created_at, updated_at)"
        " VALUES ($1,$2,$3,'ACTIVE', CASE WHEN substr($3, 3, 3) IN ('800','833','844','855','866','877','888')"
        " THEN 'toll_free' ELSE 'local' END, now(), clock_timestamp(), clock_timestamp())"
        " ON CONFLICT (number) DO NOTHING RETURNING id", did_id, partner_id, number)
    return row is not None
