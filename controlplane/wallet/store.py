"""SQL of the wallet: the one writer of balances (docs/wallet.md).

Every movement is an entry, idempotent by (partner, reference), and moves the balance in
the same statement; each statement that moves a balance also runs
``pg_notify('wallet_changed', '<partner> <balance>')``, delivered on commit only (to every
daemon): the wallet plugin turns it into ``signals.wallet_changed``. Functions take the
caller's connection, so the caller decides the transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from controlplane.db.connection import Connection
from controlplane.shared.pagination import PageRequest
from controlplane.wallet.models import Entry, Posted, RechargeSettings

Conn = Connection
CHANNEL = "wallet_changed"
# Nothing is drawn from a TRIAL partner's wallet (partners.status: the account capability's).
_NOT_TRIAL = "pa.status <> 'TRIAL'"
# A call is drawn only if it started once the partner was activated: one placed in trial is
# not, even when it is recorded after the activation or the trial's expiry.
_AFTER_ACTIVATION = "pa.activated_at IS NOT NULL AND pa.activated_at <= x.at"
_ENTRY_COLUMNS = "id, partner_id, kind, amount, reference, tenant_id, call_id, note, created_at"


def _arrays(entries: Sequence[Entry]) -> list[list[object]]:
    return [[e.partner_id for e in entries], [e.kind.value for e in entries],
            [e.amount_micros for e in entries], [e.reference for e in entries],
            [e.tenant_id for e in entries], [e.call_id for e in entries], [e.note for e in entries]]


_INPUT = ("unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])"
          " WITH ORDINALITY AS x(p, k, a, r, t, c, n, o)")


_USAGE_INPUT = ("unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],"
                " $8::timestamptz[]) WITH ORDINALITY AS x(p, k, a, r, t, c, n, at, o)")


def _posting(source: str) -> str:
    """CTEs ``entry`` (the entries of ``source`` not posted before) and ``wallet`` (one
    balance update per partner, locked in partner order, returning the new balances)."""
    return f"""entry AS (INSERT INTO wallet_entries (partner_id, kind, amount, reference, tenant_id, call_id, note)
                         SELECT p, k, a, r, t, c, n FROM {source} ORDER BY o
                         ON CONFLICT (partner_id, reference) DO NOTHING
                         RETURNING id, partner_id, amount, reference),
               wallet AS (INSERT INTO partner_wallets AS w (partner_id, balance)
                          SELECT partner_id, sum(amount) FROM entry GROUP BY partner_id ORDER BY partner_id
                          ON CONFLICT (partner_id) DO UPDATE SET balance = w.balance + EXCLUDED.balance,
                                                                 updated_at = now()
                          RETURNING partner_id, balance)"""


def lock_wallets(partners: str) -> str:
    """A CTE body that locks the wallet rows of ``partners`` (an SQL text[] expression), in partner
    order. The one lock order of the rows a ledger posting shares with call records: the wallet
    row, then the report rows (the triggers of migration 0023 update those at the end of each
    statement). A statement that writes call records and is followed by the calls' debit in the
    same transaction references this first; otherwise a fee posted meanwhile for the same tenant
    and day (wallet, then report row) and the recorder (report row, then wallet) deadlock."""
    return f"SELECT partner_id FROM partner_wallets WHERE partner_id = ANY({partners}) ORDER BY partner_id FOR UPDATE"


async def post(conn: Conn, entry: Entry) -> Posted:
    """Post one entry (idempotent by its reference); ``created`` False: it was there already."""
    return (await post_many(conn, [entry]))[0]


async def post_many(conn: Conn, entries: Sequence[Entry]) -> list[Posted]:
    """Post entries in one statement; each one's balance is its partner's after all of them."""
    if not entries:
        return []
    rows = await conn.fetch(
        f"""WITH {_posting(_INPUT)},
                 notified AS (SELECT partner_id, balance, pg_notify('{CHANNEL}', partner_id || ' ' || balance)
                              FROM wallet)
            SELECT e.id, e.partner_id, e.reference, e.amount, n.balance
            FROM entry e JOIN notified n ON n.partner_id = e.partner_id""", *_arrays(entries))
    posted = {(r["partner_id"], r["reference"]): r for r in rows}
    missing = [e for e in entries if (e.partner_id, e.reference) not in posted]
    existing = {}
    if missing:
        found = await conn.fetch(
            """SELECT e.id, e.partner_id, e.reference, e.amount, COALESCE(w.balance, 0) AS balance
               FROM wallet_entries e LEFT JOIN partner_wallets w ON w.partner_id = e.partner_id
               WHERE (e.partner_id, e.reference) IN (SELECT * FROM unnest($1::text[], $2::text[]))""",
            [e.partner_id for e in missing], [e.reference for e in missing])
        existing = {(r["partner_id"], r["reference"]): r for r in found}
    out, taken = [], set()
    for e in entries:
        key = (e.partner_id, e.reference)
        row = posted.get(key)
        created = row is not None and key not in taken  # a repeat inside the batch posted nothing
        taken.add(key)
        if row is None:
            row = existing[key]
        out.append(Posted(int(row["id"]), int(row["balance"]), created, int(row["amount"])))
    return out


async def post_usage(conn: Conn, entries: Sequence[Entry], with_cte: str = "",
                     *with_args: object) -> dict[str, int]:
    """The calls' hot path: post their usage entries, skipping calls that started before the
    partner's activation (nothing is drawn in trial: ``Entry.occurred_at`` is the call's
    start), and run the caller's own data-modifying CTE (``with_cte``, parameters from $9:
    ``with_args``) in the SAME statement: one round trip per batch of calls.

    The entries must be new: each is a call whose record the same transaction just inserted
    (``call:<call id>``, once per call by the record's unique linkedid); a repeat is an error
    (the unique reference), not a skip.

    Returns partner -> new balance for the partners that were debited."""
    rows = await conn.fetch(usage_sql(with_cte), *_arrays(entries), [e.occurred_at for e in entries],
                            *with_args)
    return {r["partner_id"]: int(r["balance"]) for r in rows}


def usage_sql(with_cte: str = "") -> str:
    """The statement of ``post_usage``: the balances are summed from the input (not from the
    inserted rows: nothing is skipped), the entries inserted plainly (no ON CONFLICT: its
    speculative insertion is the dearest part of the calls' hot path)."""
    cte = f", caller AS ({with_cte})" if with_cte else ""
    return f"""WITH src AS (SELECT x.* FROM {_USAGE_INPUT} JOIN partners pa ON pa.id = x.p WHERE {_AFTER_ACTIVATION}),
                    entry AS (INSERT INTO wallet_entries (partner_id, kind, amount, reference, tenant_id, call_id,
                                                          note)
                              SELECT p, k, a, r, t, c, n FROM src ORDER BY o),
                    wallet AS (INSERT INTO partner_wallets AS w (partner_id, balance)
                               SELECT p, sum(a) FROM src GROUP BY p ORDER BY p
                               ON CONFLICT (partner_id) DO UPDATE SET balance = w.balance + EXCLUDED.balance,
                                                                      updated_at = now()
                               RETURNING partner_id, balance){cte}
               SELECT partner_id, balance, pg_notify('{CHANNEL}', partner_id || ' ' || balance) FROM wallet"""


async def balance(conn: Conn, partner_id: str) -> int:
    value: int | None = await conn.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1",
                                            partner_id)
    return value or 0


async def lock_balance(conn: Conn, partner_id: str) -> int:
    """The balance, its row locked until the caller's transaction ends (check, then debit)."""
    await conn.execute("INSERT INTO partner_wallets (partner_id) VALUES ($1) ON CONFLICT DO NOTHING", partner_id)
    value = await conn.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1 FOR UPDATE",
                                partner_id)
    return int(value)


async def in_trial(conn: Conn, partner_id: str) -> bool:
    """True while the partner is TRIAL (nothing is drawn from its wallet)."""
    return bool(await conn.fetchval(
        f"SELECT NOT ({_NOT_TRIAL}) FROM partners pa WHERE pa.id = $1", partner_id))


async def partner_exists(conn: Conn, partner_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM partners WHERE id = $1", partner_id))


# ---------------------------------------------------------------- auto-recharge and warning state

def _settings(row: asyncpg.Record | None) -> RechargeSettings:
    if row is None:
        return RechargeSettings(False, 0, 0, None)
    return RechargeSettings(row["auto_recharge"], row["recharge_threshold"], row["recharge_amount"],
                            row["recharge_off_reason"])


async def settings(conn: Conn, partner_id: str, *, lock: bool = False) -> tuple[int, RechargeSettings]:
    """(balance, auto-recharge settings)."""
    row = await conn.fetchrow(
        "SELECT balance, auto_recharge, recharge_threshold, recharge_amount, recharge_off_reason"
        " FROM partner_wallets WHERE partner_id = $1" + (" FOR UPDATE" if lock else ""), partner_id)
    return (int(row["balance"]) if row else 0), _settings(row)


async def put_settings(conn: Conn, partner_id: str, s: RechargeSettings) -> None:
    await conn.execute(
        "INSERT INTO partner_wallets AS w (partner_id, auto_recharge, recharge_threshold, recharge_amount)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (partner_id) DO UPDATE SET auto_recharge = $2,"
        " recharge_threshold = $3, recharge_amount = $4, recharge_off_reason = NULL, updated_at = now()",
        partner_id, s.enabled, s.threshold_micros, s.amount_micros)


async def turn_off(conn: Conn, partner_id: str, reason: str) -> bool:
    """Auto-recharge off because of ``reason``; False when it was off already."""
    found = await conn.fetchval(
        "UPDATE partner_wallets SET auto_recharge = false, recharge_off_reason = $2, updated_at = now()"
        " WHERE partner_id = $1 AND auto_recharge RETURNING true", partner_id, reason)
    return bool(found)


async def turn_back_on(conn: Conn, partner_id: str, reasons: Sequence[str]) -> bool:
    """Back on when the platform (not the partner) had turned it off for one of ``reasons``."""
    found = await conn.fetchval(
        "UPDATE partner_wallets SET auto_recharge = true, recharge_off_reason = NULL, updated_at = now()"
        " WHERE partner_id = $1 AND NOT auto_recharge AND recharge_off_reason = ANY($2::text[])"
        " AND recharge_amount > 0 RETURNING true", partner_id, list(reasons))
    return bool(found)


async def declined_recharge_card(conn: Conn, partner_id: str) -> str | None:
    """The card of the partner's latest declined auto-recharge (payments' charges), if any."""
    method: str | None = await conn.fetchval(
        "SELECT method_id FROM payment_charges WHERE partner_id = $1 AND reference LIKE 'recharge:%'"
        " AND status = 'DECLINED' ORDER BY updated_at DESC LIMIT 1", partner_id)
    return method


async def flip_low_balance(conn: Conn, partner_id: str, threshold: int) -> tuple[bool, int] | None:
    """Record whether the balance is below ``threshold``; (now below, balance) when that
    changed (a crossing), None when it did not (or the partner is TRIAL: its wallet is not
    drawn from). Concurrent callers flip it once."""
    row = await conn.fetchrow(
        "UPDATE partner_wallets w SET low_balance_warned = (w.balance < $2) FROM partners pa"
        f" WHERE w.partner_id = $1 AND pa.id = w.partner_id AND {_NOT_TRIAL}"
        " AND w.low_balance_warned <> (w.balance < $2)"
        " RETURNING w.low_balance_warned, w.balance", partner_id, threshold)
    return None if row is None else (bool(row["low_balance_warned"]), int(row["balance"]))


async def recharge_due(conn: Conn, limit: int = 500) -> list[str]:
    """Partners whose auto-recharge threshold is crossed (the sweep behind the notifications)."""
    rows = await conn.fetch("SELECT w.partner_id FROM partner_wallets w JOIN partners pa ON pa.id = w.partner_id"
                            f" WHERE w.auto_recharge AND w.balance < w.recharge_threshold AND {_NOT_TRIAL}"
                            " ORDER BY w.partner_id LIMIT $1", limit)
    return [r["partner_id"] for r in rows]


async def warning_due(conn: Conn, threshold: int, limit: int = 500) -> list[str]:
    rows = await conn.fetch("SELECT w.partner_id FROM partner_wallets w JOIN partners pa ON pa.id = w.partner_id"
                            f" WHERE w.low_balance_warned <> (w.balance < $1) AND {_NOT_TRIAL}"
                            " ORDER BY w.partner_id LIMIT $2", threshold, limit)
    return [r["partner_id"] for r in rows]


async def uncredited_charges(conn: Conn, settle_seconds: float = 60.0) -> list[tuple[str, str, int, str]]:
    """Card charges for the wallet (top-ups, recharges) that succeeded at least
    ``settle_seconds`` ago with no entry of their reference: the process died between the
    charge and the credit. (partner, reference, amount, charge id) each."""
    rows = await conn.fetch(
        """SELECT c.partner_id, c.reference, c.amount_micros, c.id FROM payment_charges c
           WHERE c.status = 'SUCCEEDED' AND (c.reference LIKE 'topup:%' OR c.reference LIKE 'recharge:%')
             AND c.updated_at < now() - make_interval(secs => $1)
             AND NOT EXISTS (SELECT 1 FROM wallet_entries e
                             WHERE e.partner_id = c.partner_id AND e.reference = c.reference)
           ORDER BY c.updated_at LIMIT 100""", settle_seconds)
    return [(r["partner_id"], r["reference"], int(r["amount_micros"]), r["id"]) for r in rows]


# ---------------------------------------------------------------- history

@dataclass(frozen=True, slots=True)
class EntryFilter:
    partner_id: str
    kinds: tuple[str, ...] = ()
    created_from: datetime | None = None
    created_before: datetime | None = None
    tenant_id: str | None = None


def _where(f: EntryFilter) -> tuple[str, list[object]]:
    clauses: list[str] = ["partner_id = $1"]
    args: list[object] = [f.partner_id]

    def add(sql: str, value: object) -> None:
        args.append(value)
        clauses.append(sql.replace("?", f"${len(args)}"))

    if f.kinds:
        add("kind = ANY(?::text[])", list(f.kinds))
    if f.created_from is not None:
        add("created_at >= ?", f.created_from)
    if f.created_before is not None:
        add("created_at < ?", f.created_before)
    if f.tenant_id is not None:
        add("tenant_id = ?", f.tenant_id)
    return " AND ".join(clauses), args


async def list_entries(conn: Conn, f: EntryFilter, page: PageRequest) -> list[asyncpg.Record]:
    """Newest first; the cursor is (created_at, id) of the last row seen."""
    where, args = _where(f)
    if page.after is not None:
        args += [page.after.value, int(page.after.id)]
        where += f" AND (created_at, id) < (${len(args) - 1}, ${len(args)})"
    args.append(page.limit + 1)
    return await conn.fetch(f"SELECT {_ENTRY_COLUMNS} FROM wallet_entries WHERE {where}"
                            f" ORDER BY created_at DESC, id DESC LIMIT ${len(args)}", *args)


async def iter_entries(conn: Conn, f: EntryFilter, prefetch: int = 500) -> AsyncIterator[asyncpg.Record]:
    """Oldest first through a server-side cursor (inside the caller's transaction)."""
    where, args = _where(f)
    async for row in conn.cursor(f"SELECT {_ENTRY_COLUMNS} FROM wallet_entries WHERE {where}"
                                 " ORDER BY created_at, id", *args, prefetch=prefetch):
        yield row


async def entry(conn: Conn, entry_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(f"SELECT {_ENTRY_COLUMNS} FROM wallet_entries WHERE id = $1", entry_id)
    assert row is not None  # ids come from post
    return row


async def mismatches(conn: Conn) -> list[asyncpg.Record]:
    """Partners whose balance is not the sum of their entries (none: the ledger holds)."""
    return await conn.fetch("SELECT * FROM wallet_mismatches() ORDER BY partner_id")
