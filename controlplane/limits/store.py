"""SQL of the limits capability; every function takes the caller's connection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from controlplane.db.connection import Connection
from controlplane.limits.policy import Hold, Limits, Pool

Conn = Connection
COLUMNS = ("monthly_spend_micros", "max_extensions", "max_dids", "monthly_minutes", "max_inbound",
           "max_outbound", "max_two_way", "alert_threshold_pct", "auto_suspend", "billing_anchor_day")
_COLS = ", ".join(COLUMNS)
_ARGS = ", ".join(f"${i + 2}" for i in range(len(COLUMNS)))
_SET = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS)


def limits_from(row: asyncpg.Record | None) -> Limits:
    return Limits() if row is None else Limits(**{c: row[c] for c in COLUMNS})


def _values(limits: Limits) -> list[object]:
    return [getattr(limits, c) for c in COLUMNS]


async def get_limits(conn: Conn, tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLS}, updated_at FROM tenant_limits WHERE tenant_id = $1", tenant_id)


async def put_limits(conn: Conn, tenant_id: str, limits: Limits) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"INSERT INTO tenant_limits (tenant_id, {_COLS}) VALUES ($1, {_ARGS})"
        f" ON CONFLICT (tenant_id) DO UPDATE SET {_SET}, updated_at = now()"
        f" RETURNING {_COLS}, updated_at", tenant_id, *_values(limits))
    assert row is not None  # an upsert with RETURNING yields its row
    return row


async def get_defaults(conn: Conn, partner_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLS} FROM limit_defaults WHERE partner_id = $1", partner_id)


async def put_defaults(conn: Conn, partner_id: str, limits: Limits) -> None:
    await conn.execute(
        f"INSERT INTO limit_defaults (partner_id, {_COLS}) VALUES ($1, {_ARGS})"
        f" ON CONFLICT (partner_id) DO UPDATE SET {_SET}, updated_at = now()", partner_id, *_values(limits))


async def tenant_row(conn: Conn, tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, partner_id, status, timezone FROM tenants WHERE id = $1", tenant_id)


async def tenant_of_partner(conn: Conn, partner_id: str, tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, partner_id, status, timezone FROM tenants"
                               " WHERE id = $1 AND partner_id = $2", tenant_id, partner_id)


_STATE = (f"SELECT t.id, t.partner_id, t.status, t.timezone, {', '.join('l.' + c for c in COLUMNS)},"
          " l.tenant_id IS NOT NULL AS has_limits FROM tenants t LEFT JOIN tenant_limits l ON l.tenant_id = t.id")


async def all_tenants(conn: Conn) -> list[asyncpg.Record]:
    return await conn.fetch(_STATE + " WHERE t.status <> 'CANCELLED'")


async def one_tenant(conn: Conn, tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_STATE + " WHERE t.id = $1", tenant_id)


async def cycle_usage(conn: Conn, tenant_id: str, since: datetime, included: Sequence[str] = ()
                      ) -> tuple[int, int, int]:
    """Billable seconds (inbound + outbound) and retail spend since the cycle start, and the
    billable seconds of the ``included`` classes (those the included minutes cover)."""
    row = await conn.fetchrow(
        """SELECT COALESCE(sum(billable_s), 0)::bigint AS s, COALESCE(sum(retail_micros), 0)::bigint AS m,
                  COALESCE(sum(billable_s) FILTER (WHERE call_class = ANY($3::text[])), 0)::bigint AS i
           FROM call_records WHERE tenant_id = $1 AND started_at >= $2 AND direction <> 'internal'
             AND call_class <> 'emergency'""", tenant_id, since, list(included))
    assert row is not None  # an aggregate without GROUP BY yields one row
    return int(row["s"]), int(row["m"]), int(row["i"])


async def counts(conn: Conn, tenant_id: str) -> tuple[int, int]:
    """Extensions and assigned DIDs of a tenant."""
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM extensions WHERE tenant_id = $1) AS ext,
                  (SELECT count(*) FROM dids WHERE tenant_id = $1 AND status <> 'RELEASED') AS did""", tenant_id)
    assert row is not None  # a SELECT without FROM yields one row
    return int(row["ext"]), int(row["did"])


async def limits_for_update(conn: Conn, tenant_id: str) -> asyncpg.Record | None:
    """The limits row, locked: two concurrent creations cannot both take the last slot."""
    return await conn.fetchrow(f"SELECT {_COLS} FROM tenant_limits WHERE tenant_id = $1 FOR UPDATE", tenant_id)


# ---------------------------------------------------------------- reservations


async def save_reservations(conn: Conn, rows: Sequence[tuple[str, str, Hold, str, datetime, datetime]]) -> None:
    await conn.executemany(
        """INSERT INTO limit_reservations (call_id, tenant_id, pool, seconds, micros, channel, admitted_at,
                                              expires_at, wallet_micros)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (call_id) DO NOTHING""",
        [(h.call_id, t, h.pool.value if h.pool else None, h.seconds, h.micros, ch, at, exp, h.wallet_micros)
         for _, t, h, ch, at, exp in rows])


async def delete_reservations(conn: Conn, call_ids: Sequence[str]) -> None:
    await conn.execute("DELETE FROM limit_reservations WHERE call_id = ANY($1::text[])", list(call_ids))


async def live_reservations(conn: Conn, now: datetime) -> list[asyncpg.Record]:
    await conn.execute("DELETE FROM limit_reservations WHERE expires_at <= $1", now)
    # This node's own (the connection's controlplane.node_id, migration 0029): another node's
    # calls are that node's to hold; they count here through shared_wallet, never in memory.
    return await conn.fetch("SELECT * FROM limit_reservations WHERE node_id = controlplane_node() ORDER BY admitted_at")


async def lock_wallet_holds(conn: Conn, partner_id: str, node_id: str) -> int:
    """In the caller's transaction: serialize the partner's admissions across nodes, and return
    the live wallet holds the other nodes wrote (controlplane.limits.shared_wallet)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"wallet-holds:{partner_id}")
    return int(await conn.fetchval(
        """SELECT coalesce(sum(r.wallet_micros), 0) FROM limit_reservations r JOIN tenants t ON t.id = r.tenant_id
           WHERE t.partner_id = $1 AND r.node_id <> $2 AND r.expires_at > now()""", partner_id, node_id))


def hold_from(row: asyncpg.Record) -> Hold:
    return Hold(row["call_id"], Pool(row["pool"]) if row["pool"] else None, row["seconds"], row["micros"],
                row["wallet_micros"])


# ---------------------------------------------------------------- partners (status, wallet balance)

# partners.status: the account capability's (migration 0013); the balance: the wallet's table
# (migration 0012), read only: the wallet store is its one writer.
_ACCOUNT = ("SELECT p.id, p.status, COALESCE(w.balance, 0)::bigint AS balance FROM partners p"
            " LEFT JOIN partner_wallets w ON w.partner_id = p.id")


async def partner_accounts(conn: Conn) -> list[asyncpg.Record]:
    return await conn.fetch(_ACCOUNT)


async def partner_account(conn: Conn, partner_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_ACCOUNT + " WHERE p.id = $1", partner_id)


# ---------------------------------------------------------------- alerts


async def mark_alert(conn: Conn, tenant_id: str, cycle: datetime, cap: str, kind: str) -> bool:
    """True the first time this cap's alert is marked in this cycle."""
    return await conn.fetchval(
        """INSERT INTO limit_alerts (tenant_id, cycle_start, cap, kind) VALUES ($1, $2, $3, $4)
           ON CONFLICT DO NOTHING RETURNING true""", tenant_id, cycle, cap, kind) is True
