"""SQL for the PJSIP realtime tables Asterisk reads, and for the state the
renderers need. Rows are written in the caller's transaction, so a change and
its Asterisk objects commit (or roll back) together."""

from __future__ import annotations

from collections.abc import Sequence

from controlplane.tenants.store import Conn
from provisioning.model import (DidState, DidStatus, ExtensionState, PartnerStatus, ProvisioningState, TenantState,
                                TenantStatus)
from provisioning.names import ENDPOINT_PATTERN
from provisioning.pjsip import TABLES, AorRow, AuthRow, EndpointRow, columns, row_values

Row = EndpointRow | AuthRow | AorRow
# A contact's id is "<aor>;@<hash>"; realtime stores the ";" escaped as "^3B".
_CONTACT_AOR = "split_part(replace(ps_contacts.id, '^3B', ';'), ';@', 1)"


async def load_state(conn: Conn, tenant_id: str | None = None) -> ProvisioningState:
    """The provisioning state of one tenant, or of everything (tenant_id None)."""
    where, args = ("WHERE t.id = $1", [tenant_id]) if tenant_id else ("", [])
    tenants = tuple(TenantState(r["id"], r["sip_prefix"], TenantStatus(r["status"]), r["default_cnam"],
                                PartnerStatus(r["partner_status"]))
                    for r in await conn.fetch(
                        f"SELECT t.id, t.sip_prefix, t.status, t.default_cnam, p.status AS partner_status"
                        f" FROM tenants t JOIN partners p ON p.id = t.partner_id {where}", *args))
    ext_where = "WHERE tenant_id = $1" if tenant_id else ""
    extensions = tuple(
        ExtensionState(r["id"], r["tenant_id"], r["number"], r["display_name"], r["sip_ha1"], r["voicemail_enabled"])
        for r in await conn.fetch("SELECT id, tenant_id, number, display_name, sip_ha1, voicemail_enabled"
                                  f" FROM extensions {ext_where}", *args))
    dids: tuple[DidState, ...] = ()
    if tenant_id is None:
        dids = tuple(DidState(r["number"], r["tenant_id"], r["extension_id"], DidStatus(r["status"]), r["cnam"],
                              r["e911_status"] == "REGISTERED")
                     for r in await conn.fetch("SELECT number, tenant_id, extension_id, status, cnam, e911_status"
                                               " FROM dids"))
    return ProvisioningState(tenants, extensions, dids)


async def fetch_rows(conn: Conn, table: str, tenant_id: str | None = None) -> dict[str, Row]:
    row_type = TABLES[table]
    cols = columns(row_type)
    sql = f"SELECT {', '.join(cols)} FROM {table}" + (" WHERE tenant_id = $1" if tenant_id else "")
    records = await conn.fetch(sql, *([tenant_id] if tenant_id else []))
    return {r["id"]: row_type(*(r[c] for c in cols)) for r in records}


async def upsert_rows(conn: Conn, table: str, rows: Sequence[Row]) -> None:
    if not rows:
        return
    cols = columns(TABLES[table])
    placeholders = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols[1:])
    await conn.executemany(
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({placeholders})"
        f" ON CONFLICT (id) DO UPDATE SET {updates}", [row_values(r) for r in rows])


async def delete_rows(conn: Conn, table: str, ids: Sequence[str]) -> None:
    if ids:
        await conn.execute(f"DELETE FROM {table} WHERE id = ANY($1::text[])", list(ids))


async def drop_contacts(conn: Conn, aor_ids: Sequence[str]) -> int:
    """Remove registrations of AORs that no longer exist: the phones drop off."""
    if not aor_ids:
        return 0
    result = await conn.execute(f"DELETE FROM ps_contacts WHERE endpoint = ANY($1::text[]) OR {_CONTACT_AOR}"
                                " = ANY($1::text[])", list(aor_ids))
    return int(result.split()[-1])


async def orphan_contact_aors(conn: Conn) -> list[str]:
    """AORs named like tenant objects that have contacts but no ps_aors row."""
    rows = await conn.fetch(
        f"SELECT DISTINCT {_CONTACT_AOR} AS aor FROM ps_contacts"
        f" WHERE {_CONTACT_AOR} ~ $1"
        f" AND NOT EXISTS (SELECT 1 FROM ps_aors a WHERE a.id = {_CONTACT_AOR})", ENDPOINT_PATTERN)
    return [r["aor"] for r in rows]
