"""Helpers for the invoice tests: tenants with units and call records seeded in SQL, and a terms
lookup with fixed terms and calendar-month periods (the job's ``TermsLookup``) for tests that do
not go through the profiles capability."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import asyncpg

from cdr_ingest.cycles import cycle_date, cycle_start
from controlplane.db.connection import Connection
from controlplane.invoices.compose import Cycle
from controlplane.invoices.models import BillingTerms

FLAT_99 = BillingTerms("FLAT", 99_000_000, 5, 2, 500, 20_000_000, 4_000_000, 4_000_000, 25_000,
                       net_terms_days=15, profile_name="Flat 99")


@dataclass
class MonthlyLookup:
    """Calendar months in UTC, the same terms for every tenant unless ``per_tenant`` names others."""

    terms: BillingTerms = FLAT_99
    per_tenant: Mapping[str, BillingTerms] = field(default_factory=dict)

    async def __call__(self, conn: Connection, tenant_ids: Sequence[str], now: datetime) -> dict[str, Cycle]:
        current = cycle_start(now, "UTC", 1)
        start = cycle_start(current - timedelta(microseconds=1), "UTC", 1)
        return {t: Cycle(start, current, self.per_tenant.get(t, self.terms)) for t in tenant_ids}


async def partner(conn: Connection, partner_id: str | None = None) -> str:
    pid = partner_id or f"ptr_{secrets.token_hex(6)}"
    await conn.execute("INSERT INTO partners (id, name, tier, status, activated_at, created_at)"
                       " VALUES ($1, 'Reseller', 'BUSINESS', 'ACTIVE', '2026-01-01T00:00Z', '2026-01-01T00:00Z')", pid)
    return pid


async def tenant(conn: Connection, partner_id: str, *, created: datetime, extensions: int = 0,
                 dids: int = 0, units_since: datetime | None = None, tenant_id: str | None = None) -> str:
    tid = tenant_id or f"ten_{secrets.token_hex(6)}"
    prefix = "t" + secrets.token_hex(4)
    await conn.execute("INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status, created_at)"
                       " VALUES ($1, $2, 'Tenant', $3, 'billing@example.com', 'ACTIVE', $4)",
                       tid, partner_id, prefix, created)
    since = units_since or created
    for n in range(extensions):
        await conn.execute("INSERT INTO extensions (id, tenant_id, number, display_name, sip_ha1, created_at)"
                           " VALUES ($1, $2, $3, 'x', 'ha1', $4)", f"ext_{tid}_{n}", tid, f"{101 + n}", since)
    for n in range(dids):
        await add_did(conn, partner_id, tid, since)
    return tid


async def add_did(conn: Connection, partner_id: str, tenant_id: str, at: datetime) -> str:
    did = f"did_{secrets.token_hex(6)}"
    number = "+1501" + "".join(str(secrets.randbelow(10)) for _ in range(7))
    await conn.execute("INSERT INTO dids (id, partner_id, number, tenant_id, status, kind, created_at)"
                       " VALUES ($1, $2, $3, $4, 'ACTIVE', 'local', $5)", did, partner_id, number, tenant_id, at)
    return did


async def calls(conn: Connection, partner_id: str, tenant_id: str, at: datetime, seconds: list[int],
                call_class: str = "local", period: date | None = None) -> None:
    """Rated call records (``billable_s`` as given) starting at ``at``, a minute apart, each added
    to its period's usage counter as the call recorder adds it: ``period`` (a key, the period's
    first day) or the UTC calendar month the call started in (MonthlyLookup's periods)."""
    starts = [at + timedelta(minutes=i) for i in range(len(seconds))]
    await conn.executemany(
        "INSERT INTO call_records (id, linkedid, tenant_id, partner_id, direction, caller, callee, started_at,"
        " answered_at, ended_at, duration_s, answered_s, billable_s, wholesale_billable_s, disposition,"
        " hangup_cause, call_class) VALUES ($1, $1, $2, $3, 'outbound', '101', '+15015550100', $4, $4, $5, $6, $6,"
        " $6, $6, 'ANSWERED', 16, $7)",
        [(f"cr_{secrets.token_hex(8)}", tenant_id, partner_id, t, t + timedelta(seconds=s), s, call_class)
         for t, s in zip(starts, seconds, strict=True)])
    per_period: dict[date, list[int]] = {}
    for t, s in zip(starts, seconds, strict=True):
        per_period.setdefault(period or cycle_date(t), []).append(s)
    for key, counted in per_period.items():
        await count_usage(conn, tenant_id, key, call_class, sum(counted), len(counted))


async def count_usage(conn: Connection, tenant_id: str, period: date, call_class: str, billable_s: int,
                      calls: int = 1) -> None:
    """Calls' seconds added to the tenant's usage counter of ``period`` (what the invoice reads)."""
    await conn.execute(
        "INSERT INTO tenant_usage AS u (tenant_id, cycle_start, call_class, calls, answered_s, billable_s)"
        " VALUES ($1, $2, $3, $5, $4, $4) ON CONFLICT (tenant_id, cycle_start, call_class) DO UPDATE SET"
        " calls = u.calls + $5, answered_s = u.answered_s + $4, billable_s = u.billable_s + $4",
        tenant_id, period, call_class, billable_s, calls)


async def jurisdiction(conn: Connection, partner_id: str, tenant_id: str | None, rate: str = "8.5",
                       code: str = "US-AR-Pulaski") -> str:
    jid = f"tax_{secrets.token_hex(6)}"
    await conn.execute("INSERT INTO tax_jurisdictions (id, partner_id, name, code, rate) VALUES ($1, $2,"
                       " 'Pulaski County', $3, $4::numeric)", jid, partner_id, code, rate)
    if tenant_id is not None:
        await conn.execute("INSERT INTO tenant_tax (tenant_id, jurisdiction_id) VALUES ($1, $2)", tenant_id, jid)
    return jid


async def invoice_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM tenant_invoices"))


OCT, NOV = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
