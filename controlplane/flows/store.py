"""SQL of the flows capability's own objects: IVR menus, time conditions, DID routes, the
tenant's unassigned-DID behaviour, and what its renderer reads per tenant."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from controlplane.db.connection import Connection

Conn = Connection


async def tenant(conn: Conn, partner_id: str, tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, sip_prefix, timezone, status FROM tenants"
                               " WHERE id = $1 AND partner_id = $2 AND status <> 'CANCELLED'", tenant_id, partner_id)


# ------------------------------------------------------------------ IVR menus

async def insert_ivr(conn: Conn, row: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO ivr_menus (id, tenant_id, name, prompt_kind, prompt_ref, timeout_seconds, max_attempts,"
        " dial_by_extension, options, timeout_kind, timeout_ref, invalid_kind, invalid_ref)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10,$11,$12,$13)",
        row["id"], row["tenant_id"], row["name"], row["prompt_kind"], row["prompt_ref"], row["timeout_seconds"],
        row["max_attempts"], row["dial_by_extension"], json.dumps(row["options"]), row["timeout_kind"],
        row["timeout_ref"], row["invalid_kind"], row["invalid_ref"])


async def update_ivr(conn: Conn, row: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE ivr_menus SET name=$3, prompt_kind=$4, prompt_ref=$5, timeout_seconds=$6, max_attempts=$7,"
        " dial_by_extension=$8, options=$9::jsonb, timeout_kind=$10, timeout_ref=$11, invalid_kind=$12,"
        " invalid_ref=$13, updated_at=clock_timestamp() WHERE id=$1 AND tenant_id=$2",
        row["id"], row["tenant_id"], row["name"], row["prompt_kind"], row["prompt_ref"], row["timeout_seconds"],
        row["max_attempts"], row["dial_by_extension"], json.dumps(row["options"]), row["timeout_kind"],
        row["timeout_ref"], row["invalid_kind"], row["invalid_ref"])


async def get_ivr(conn: Conn, tenant_id: str, ivr_id: str, *, lock: bool = False) -> asyncpg.Record | None:
    suffix = " FOR UPDATE" if lock else ""
    return await conn.fetchrow("SELECT * FROM ivr_menus WHERE tenant_id = $1 AND id = $2" + suffix,
                               tenant_id, ivr_id)


async def list_ivrs(conn: Conn, tenant_ids: Sequence[str]) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT * FROM ivr_menus WHERE tenant_id = ANY($1::text[])"
                                 " ORDER BY tenant_id, created_at, id", list(tenant_ids)))


async def delete_ivr(conn: Conn, tenant_id: str, ivr_id: str) -> None:
    await conn.execute("DELETE FROM ivr_menus WHERE tenant_id = $1 AND id = $2", tenant_id, ivr_id)


# ------------------------------------------------------------------ time conditions

async def upsert_time_condition(conn: Conn, row: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO time_conditions (id, tenant_id, name, hours, holidays, override, open_kind, open_ref,"
        " closed_kind, closed_ref) VALUES ($1,$2,$3,$4::jsonb,$5::jsonb,$6,$7,$8,$9,$10)"
        " ON CONFLICT (id) DO UPDATE SET name=EXCLUDED.name, hours=EXCLUDED.hours, holidays=EXCLUDED.holidays,"
        " override=EXCLUDED.override, open_kind=EXCLUDED.open_kind, open_ref=EXCLUDED.open_ref,"
        " closed_kind=EXCLUDED.closed_kind, closed_ref=EXCLUDED.closed_ref, updated_at=clock_timestamp()"
        " WHERE time_conditions.tenant_id = EXCLUDED.tenant_id",
        row["id"], row["tenant_id"], row["name"], json.dumps(row["hours"]), json.dumps(row["holidays"]),
        row["override"], row["open_kind"], row["open_ref"], row["closed_kind"], row["closed_ref"])


async def get_time_condition(conn: Conn, tenant_id: str, tc_id: str, *, lock: bool = False
                             ) -> asyncpg.Record | None:
    suffix = " FOR UPDATE" if lock else ""
    return await conn.fetchrow("SELECT * FROM time_conditions WHERE tenant_id = $1 AND id = $2" + suffix,
                               tenant_id, tc_id)


async def list_time_conditions(conn: Conn, tenant_ids: Sequence[str]) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT * FROM time_conditions WHERE tenant_id = ANY($1::text[])"
                                 " ORDER BY tenant_id, created_at, id", list(tenant_ids)))


async def delete_time_condition(conn: Conn, tenant_id: str, tc_id: str) -> None:
    await conn.execute("DELETE FROM time_conditions WHERE tenant_id = $1 AND id = $2", tenant_id, tc_id)


# ------------------------------------------------------------------ DIDs and the unassigned behaviour

async def did(conn: Conn, tenant_id: str, did_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT d.id, d.number, d.status, r.target_kind, r.target_ref FROM dids d"
        " LEFT JOIN did_routes r ON r.did_id = d.id AND r.tenant_id = d.tenant_id WHERE d.tenant_id = $1 AND d.id = $2 FOR UPDATE OF d",
        tenant_id, did_id)


async def set_did_route(conn: Conn, tenant_id: str, did_id: str, kind: str | None, ref: str) -> None:
    if kind is None:
        await conn.execute("DELETE FROM did_routes WHERE did_id = $1", did_id)
        return
    await conn.execute(
        "INSERT INTO did_routes (did_id, tenant_id, target_kind, target_ref) VALUES ($1,$2,$3,$4)"
        " ON CONFLICT (did_id) DO UPDATE SET tenant_id=EXCLUDED.tenant_id, target_kind=EXCLUDED.target_kind,"
        " target_ref=EXCLUDED.target_ref, updated_at=clock_timestamp()", did_id, tenant_id, kind, ref)


async def settings(conn: Conn, tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM tenant_flow_settings WHERE tenant_id = $1", tenant_id)


async def set_unassigned(conn: Conn, tenant_id: str, kind: str | None, ref: str) -> None:
    await conn.execute(
        "INSERT INTO tenant_flow_settings (tenant_id, unassigned_kind, unassigned_ref) VALUES ($1,$2,$3)"
        " ON CONFLICT (tenant_id) DO UPDATE SET unassigned_kind=EXCLUDED.unassigned_kind,"
        " unassigned_ref=EXCLUDED.unassigned_ref, updated_at=clock_timestamp()", tenant_id, kind, ref)


# ------------------------------------------------------------------ what the renderer reads

async def render_tenants(conn: Conn, tenant_ids: Sequence[str] | None) -> list[asyncpg.Record]:
    """Provisioned tenants (all of them when ``tenant_ids`` is None) with their flow settings."""
    where = "t.status <> 'CANCELLED'" + ("" if tenant_ids is None else " AND t.id = ANY($1::text[])")
    args: list[Any] = [] if tenant_ids is None else [list(tenant_ids)]
    return list(await conn.fetch(
        "SELECT t.id, t.sip_prefix, t.timezone, s.unassigned_kind, s.unassigned_ref FROM tenants t"
        f" LEFT JOIN tenant_flow_settings s ON s.tenant_id = t.id WHERE {where} ORDER BY t.sip_prefix", *args))


async def render_dids(conn: Conn, tenant_ids: Sequence[str]) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT d.tenant_id, d.number, r.target_kind, r.target_ref, e.number AS extension FROM dids d"
        # a route set while the DID was another tenant's is not this tenant's route
        " LEFT JOIN did_routes r ON r.did_id = d.id AND r.tenant_id = d.tenant_id"
        " LEFT JOIN extensions e ON e.id = d.extension_id"
        " WHERE d.tenant_id = ANY($1::text[]) AND d.status = 'ACTIVE' ORDER BY d.number", list(tenant_ids)))


async def render_externals(conn: Conn, tenant_ids: Sequence[str]) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT DISTINCT tenant_id, target_ref FROM flow_references"
        " WHERE tenant_id = ANY($1::text[]) AND target_kind = 'external'", list(tenant_ids)))


async def render_extensions(conn: Conn, tenant_ids: Sequence[str]) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT tenant_id, number FROM extensions WHERE tenant_id = ANY($1::text[])",
                                 list(tenant_ids)))


async def exists(conn: Conn, table: str, tenant_id: str, object_id: str) -> bool:
    assert table in ("ivr_menus", "time_conditions")
    return bool(await conn.fetchval(f"SELECT 1 FROM {table} WHERE tenant_id = $1 AND id = $2",
                                    tenant_id, object_id))


async def fingerprints(conn: Conn) -> dict[str, str]:
    """Tenant id -> a digest of what other capabilities change without naming the tenant (its
    status and zone, its extensions, its DIDs): ``dialplan_changed`` re-renders only the tenants
    whose digest moved, not all of them."""
    rows = await conn.fetch(
        "SELECT t.id, md5(concat_ws('|', t.status, t.timezone, t.updated_at::text,"
        " (SELECT string_agg(e.id || ':' || e.number || ':' || e.updated_at::text, ',' ORDER BY e.id)"
        "  FROM extensions e WHERE e.tenant_id = t.id),"
        " (SELECT string_agg(d.number || ':' || d.status || ':' || coalesce(d.extension_id, '') || ':'"
        "   || d.updated_at::text, ',' ORDER BY d.number) FROM dids d WHERE d.tenant_id = t.id))) AS digest"
        " FROM tenants t WHERE t.status <> 'CANCELLED'")
    return {r["id"]: r["digest"] for r in rows}
