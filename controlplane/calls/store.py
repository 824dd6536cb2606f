"""SQL of the calls capability. Every function takes the caller's connection, so the
services decide transaction boundaries (record + ledger + usage + event in one). The
wallet's SQL is the wallet capability's (``controlplane.wallet.store``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg
import msgspec

from cdr_ingest.cdr_rebuild import CdrRow
from cdr_ingest.records import CallRecord
from controlplane.db.connection import Connection
from controlplane.shared.pagination import PageRequest
from controlplane.wallet import store as wallet_store
from controlplane.wallet.models import Entry

Conn = Connection

_RECORD_COLUMNS = tuple(CallRecord.__struct_fields__)
_COLS = ", ".join(_RECORD_COLUMNS)
_PARAMS = ", ".join(f"${i + 1}" for i in range(len(_RECORD_COLUMNS)))


@dataclass(frozen=True, slots=True)
class CallFilter:
    partner_id: str
    tenant_id: str | None = None
    direction: str | None = None
    call_class: str | None = None
    disposition: str | None = None
    started_from: datetime | None = None
    started_before: datetime | None = None


# ---------------------------------------------------------------- billing context

async def tenant_billing(conn: Conn, tenant_id: str) -> asyncpg.Record | None:
    """The tenant's tier and the partner's retail deck (its pricing: controlplane.profiles)."""
    return await conn.fetchrow(
        """SELECT t.id AS tenant_id, t.partner_id, p.tier, d.csv AS deck_csv, d.updated_at AS deck_at
           FROM tenants t JOIN partners p ON p.id = t.partner_id
           LEFT JOIN retail_rate_decks d ON d.partner_id = t.partner_id
           WHERE t.id = $1""", tenant_id)


async def partner_exists(conn: Conn, partner_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM partners WHERE id = $1", partner_id))


async def tenant_partner(conn: Conn, tenant_id: str) -> str | None:
    partner: str | None = await conn.fetchval("SELECT partner_id FROM tenants WHERE id = $1", tenant_id)
    return partner


async def put_retail_deck(conn: Conn, partner_id: str, csv: str, rates: int) -> None:
    await conn.execute(
        "INSERT INTO retail_rate_decks (partner_id, csv, rates) VALUES ($1, $2, $3)"
        " ON CONFLICT (partner_id) DO UPDATE SET csv = $2, rates = $3, updated_at = now()",
        partner_id, csv, rates)


# ---------------------------------------------------------------- calls in progress

async def insert_active(conn: Conn, linkedid: str, call_id: str, tenant_id: str, partner_id: str,
                        inbound: bool, dialed: str, caller_num: str, started_at: datetime) -> bool:
    """True when this is the first sighting (the initiated event is ours to send)."""
    found = await conn.fetchval(
        """INSERT INTO calls_active (linkedid, call_id, tenant_id, partner_id, inbound, dialed, caller_num,
                                     started_at)
           SELECT $1, $2, $3, $4, $5, $6, $7, $8
           WHERE NOT EXISTS (SELECT 1 FROM call_records WHERE linkedid = $1)
           ON CONFLICT (linkedid) DO NOTHING RETURNING true""",
        linkedid, call_id, tenant_id, partner_id, inbound, dialed, caller_num, started_at)
    return bool(found)


async def mark_answered(conn: Conn, linkedid: str, answered_at: datetime) -> bool:
    found = await conn.fetchval(
        "UPDATE calls_active SET answered_at = $2, answered_sent = true, updated_at = now()"
        " WHERE linkedid = $1 AND NOT answered_sent RETURNING true", linkedid, answered_at)
    return bool(found)


async def insert_active_many(conn: Conn, rows: Sequence[tuple[str, str, str, str, bool, str, str, datetime]]
                             ) -> set[str]:
    """``insert_active`` for several calls (distinct linkedids): the linkedids seen first."""
    found = await conn.fetch(
        """INSERT INTO calls_active (linkedid, call_id, tenant_id, partner_id, inbound, dialed, caller_num,
                                     started_at)
           SELECT l, c, t, p, i, d, n, s
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[], $7::text[],
                       $8::timestamptz[]) AS x(l, c, t, p, i, d, n, s)
           WHERE NOT EXISTS (SELECT 1 FROM call_records WHERE linkedid = x.l)
           ON CONFLICT (linkedid) DO NOTHING RETURNING linkedid""",
        *(list(col) for col in zip(*rows, strict=True)))
    return {r["linkedid"] for r in found}


async def mark_answered_many(conn: Conn, rows: Sequence[tuple[str, datetime]]) -> set[str]:
    """``mark_answered`` for several calls (distinct linkedids): those whose event is ours to send."""
    found = await conn.fetch(
        """UPDATE calls_active a SET answered_at = x.at, answered_sent = true, updated_at = now()
           FROM unnest($1::text[], $2::timestamptz[]) AS x(l, at)
           WHERE a.linkedid = x.l AND NOT a.answered_sent RETURNING a.linkedid""",
        [r[0] for r in rows], [r[1] for r in rows])
    return {r["linkedid"] for r in found}


async def active_rows(conn: Conn, linkedids: Sequence[str] | None = None) -> list[asyncpg.Record]:
    if linkedids is None:
        return await conn.fetch("SELECT * FROM calls_active")
    return await conn.fetch("SELECT * FROM calls_active WHERE linkedid = ANY($1::text[])", list(linkedids))


async def delete_active(conn: Conn, linkedid: str) -> asyncpg.Record | None:
    return await conn.fetchrow("DELETE FROM calls_active WHERE linkedid = $1 RETURNING *", linkedid)


# ---------------------------------------------------------------- records, ledger, usage

async def insert_record(conn: Conn, record: CallRecord) -> bool:
    """False when the call was already recorded (ingested twice: counted once)."""
    cols = ", ".join(_RECORD_COLUMNS)
    params = ", ".join(f"${i + 1}" for i in range(len(_RECORD_COLUMNS)))
    found = await conn.fetchval(
        f"INSERT INTO call_records ({cols}) VALUES ({params})"
        " ON CONFLICT (linkedid, leg) DO NOTHING RETURNING true",
        *(getattr(record, c) for c in _RECORD_COLUMNS))
    return bool(found)


# The calls' wallet rows are locked before the records are inserted (their trigger locks report
# rows): wallet.store.lock_wallets says why. The records' insert reads the lock CTE, so PostgreSQL
# runs it first (a CTE nobody reads is never run); the condition itself is always true.
_LOCK_ONE = wallet_store.lock_wallets(f"ARRAY[${_RECORD_COLUMNS.index('partner_id') + 1}]::text[]")
_LOCK_MANY = wallet_store.lock_wallets("ARRAY(SELECT DISTINCT partner_id FROM input)")
_LOCKED = "(SELECT count(*) FROM wallet) >= 0"


async def record_call(conn: Conn, record: CallRecord) -> tuple[bool, bool, bool]:
    """Insert the record and, if it won, drop the call's ``calls_active`` row: one round trip.

    Returns (recorded, was active, answered event sent). Not recorded = ingested twice
    (or by the reconciler at the same time): counted once. ``ON CONFLICT DO NOTHING``
    without a target covers the primary key too (the id is derived from the linkedid and
    leg). A leg's record (``leg`` not "") leaves the call's ``calls_active`` row alone.
    """
    row = await conn.fetchrow(
        f"""WITH wallet AS ({_LOCK_ONE}),
                 rec AS (INSERT INTO call_records ({_COLS}) SELECT {_PARAMS} WHERE {_LOCKED}
                         ON CONFLICT DO NOTHING RETURNING linkedid, leg),
                 act AS (DELETE FROM calls_active a USING rec WHERE a.linkedid = rec.linkedid AND rec.leg = ''
                         RETURNING a.answered_sent)
            SELECT EXISTS (SELECT 1 FROM rec) AS recorded, EXISTS (SELECT 1 FROM act) AS active,
                   COALESCE((SELECT bool_or(answered_sent) FROM act), false) AS answered_sent""",
        *(getattr(record, c) for c in _RECORD_COLUMNS))
    assert row is not None  # a SELECT without FROM yields one row
    return bool(row["recorded"]), bool(row["active"]), bool(row["answered_sent"])


async def record_calls(conn: Conn, records: Sequence[CallRecord]) -> dict[tuple[str, str], tuple[bool, bool]]:
    """``record_call`` for several calls in one statement (distinct (linkedid, leg) keys).

    Returns {(linkedid, leg): (was active, answered event sent)} of the records that won the
    insert; the others were already recorded (counted once).
    """
    if not records:
        return {}
    rows = await conn.fetch(
        f"""WITH input AS (SELECT * FROM jsonb_populate_recordset(NULL::call_records, $1::jsonb)),
                 wallet AS ({_LOCK_MANY}),
                 rec AS (INSERT INTO call_records ({_COLS}) SELECT {_COLS} FROM input WHERE {_LOCKED}
                         ON CONFLICT DO NOTHING RETURNING linkedid, leg),
                 act AS (DELETE FROM calls_active a USING rec WHERE a.linkedid = rec.linkedid AND rec.leg = ''
                         RETURNING a.linkedid, a.answered_sent)
            SELECT rec.linkedid, rec.leg, act.linkedid IS NOT NULL AS active,
                   COALESCE(act.answered_sent, false) AS answered_sent
            FROM rec LEFT JOIN act ON act.linkedid = rec.linkedid AND rec.leg = ''""",
        msgspec.json.encode(list(records)).decode())
    return {(r["linkedid"], r["leg"]): (bool(r["active"]), bool(r["answered_sent"])) for r in rows}


@dataclass(slots=True)
class UsageSum:
    calls: int = 0
    answered_s: int = 0
    billable_s: int = 0
    retail: int = 0
    wholesale: int = 0


_USAGE_UPSERT = """INSERT INTO tenant_usage AS u (tenant_id, cycle_start, call_class, calls, answered_s, billable_s,
                                          retail_micros, wholesale_micros)
           SELECT t, c, k, n, a, b, r, w
           FROM unnest($9::text[], $10::date[], $11::text[], $12::int[], $13::bigint[], $14::bigint[],
                       $15::bigint[], $16::bigint[]) WITH ORDINALITY AS x(t, c, k, n, a, b, r, w, o)
           ORDER BY o
           ON CONFLICT (tenant_id, cycle_start, call_class) DO UPDATE SET
             calls = u.calls + EXCLUDED.calls, answered_s = u.answered_s + EXCLUDED.answered_s,
             billable_s = u.billable_s + EXCLUDED.billable_s,
             retail_micros = u.retail_micros + EXCLUDED.retail_micros,
             wholesale_micros = u.wholesale_micros + EXCLUDED.wholesale_micros"""


async def settle_many(conn: Conn, debits: Sequence[Entry], usage: dict[tuple[str, date, str], UsageSum]
                      ) -> dict[str, int]:
    """The calls' usage entries (through the wallet's SQL owner, ``wallet.store.post_usage``)
    and ONE usage update per (tenant, cycle, class), in one statement; wallet and usage rows
    are locked in key order. Returns partner -> balance after the debits posted."""
    keys = sorted(usage)
    return await wallet_store.post_usage(
        conn, debits, _USAGE_UPSERT,
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [usage[k].calls for k in keys],
        [usage[k].answered_s for k in keys], [usage[k].billable_s for k in keys],
        [usage[k].retail for k in keys], [usage[k].wholesale for k in keys])


async def included_used(conn: Conn, tenant_id: str, cycle: date, classes: Sequence[str]) -> int:
    """Billable seconds of the period so far in the classes included minutes cover."""
    used: int = await conn.fetchval(
        "SELECT COALESCE(sum(billable_s), 0)::bigint FROM tenant_usage"
        " WHERE tenant_id = $1 AND cycle_start = $2 AND call_class = ANY($3::text[])", tenant_id, cycle, list(classes))
    return used


async def usage(conn: Conn, tenant_id: str, cycle: date) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM tenant_usage WHERE tenant_id = $1 AND cycle_start = $2"
                            " ORDER BY call_class", tenant_id, cycle)


# ---------------------------------------------------------------- reads

def _where(f: CallFilter) -> tuple[str, list[object]]:
    clauses = ["partner_id = $1"]
    args: list[object] = [f.partner_id]
    for column, value in (("tenant_id", f.tenant_id), ("direction", f.direction),
                          ("call_class", f.call_class), ("disposition", f.disposition)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if f.started_from is not None:
        args.append(f.started_from)
        clauses.append(f"started_at >= ${len(args)}")
    if f.started_before is not None:
        args.append(f.started_before)
        clauses.append(f"started_at < ${len(args)}")
    return " AND ".join(clauses), args


def _record(row: asyncpg.Record) -> CallRecord:
    return CallRecord(**{c: row[c] for c in _RECORD_COLUMNS})


async def list_records(conn: Conn, f: CallFilter, page: PageRequest) -> list[CallRecord]:
    """Newest first; the cursor is (started_at, id) of the last row seen."""
    where, args = _where(f)
    if page.after is not None:
        args += [page.after.created_at, page.after.id]
        where += f" AND (started_at, id) < (${len(args) - 1}, ${len(args)})"
    args.append(page.limit + 1)
    rows = await conn.fetch(f"SELECT * FROM call_records WHERE {where}"
                            f" ORDER BY started_at DESC, id DESC LIMIT ${len(args)}", *args)
    return [_record(r) for r in rows]


async def get_record(conn: Conn, partner_id: str, call_id: str) -> CallRecord | None:
    row = await conn.fetchrow("SELECT * FROM call_records WHERE id = $1 AND partner_id = $2",
                              call_id, partner_id)
    return None if row is None else _record(row)


async def iter_records(conn: Conn, f: CallFilter, prefetch: int = 500) -> AsyncIterator[CallRecord]:
    """A server-side cursor (inside the caller's transaction): constant memory at any size."""
    where, args = _where(f)
    async for row in conn.cursor(f"SELECT * FROM call_records WHERE {where} ORDER BY started_at, id",
                                 *args, prefetch=prefetch):
        yield _record(row)


async def record_exists(conn: Conn, linkedid: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM call_records WHERE linkedid = $1", linkedid))


# ---------------------------------------------------------------- Asterisk's CDRs

async def unrecorded_cdrs(conn: Conn, settled_seconds: float, limit: int) -> list[CdrRow]:
    """CDR rows of calls that ended at least ``settled_seconds`` ago and have no record."""
    rows = await conn.fetch(
        """WITH calls AS (
             SELECT c.linkedid FROM asterisk_cdr c
             WHERE NOT c.handled AND c.received_at < now() - make_interval(secs => $1)
               AND c.linkedid <> '' AND NOT EXISTS (SELECT 1 FROM call_records r WHERE r.linkedid = c.linkedid)
             GROUP BY c.linkedid ORDER BY min(c.id) LIMIT $2)
           SELECT c.* FROM asterisk_cdr c JOIN calls USING (linkedid)""", settled_seconds, limit)
    return [CdrRow(r["linkedid"], r["uniqueid"], r["start"] or 0.0, r["answer"] or 0.0, r["end"] or 0.0,
                   r["src"], r["dst"], r["channel"], r["dstchannel"], r["disposition"], r["accountcode"],
                   r["userfield"]) for r in rows]


async def mark_cdrs_handled(conn: Conn, linkedids: Sequence[str]) -> None:
    """Recorded calls, and calls no tenant is billed for, are not read again."""
    await conn.execute("UPDATE asterisk_cdr SET handled = true WHERE linkedid = ANY($1::text[]) AND NOT handled",
                       list(linkedids))


async def mark_recorded_cdrs(conn: Conn, settled_seconds: float) -> int:
    """CDRs of calls the live path already recorded."""
    result = await conn.execute(
        """UPDATE asterisk_cdr c SET handled = true
           WHERE NOT c.handled AND c.received_at < now() - make_interval(secs => $1)
             AND EXISTS (SELECT 1 FROM call_records r WHERE r.linkedid = c.linkedid)""", settled_seconds)
    return int(result.split()[-1])
