"""SQL of billing profiles, tenant assignments and rate overrides; every function takes
the caller's connection. Other capabilities read ``terms_at``, ``period_at``,
``tenant_pricing`` and ``fees_at`` (notes/contracts15.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from cdr_ingest.classify import CallClass, classify
from cdr_ingest.cycles import Period, anchor_day, period_of
from controlplane.db.connection import Connection
from controlplane.profiles.models import (OVERRIDE_FIELDS, PricingModel, ProfileBody, ProfileTerms,
                                          RateOverrides)
from controlplane.profiles.rules import period_fees

Conn = Connection
BODY_FIELDS = tuple(ProfileBody.__struct_fields__)
_COLS = ", ".join(BODY_FIELDS)
_PARAMS = ", ".join(f"${i + 3}" for i in range(len(BODY_FIELDS)))
_SET = ", ".join(f"{c} = ${i + 3}" for i, c in enumerate(BODY_FIELDS))
# The old per-tenant profile's columns, now the tenant's overrides (migration 0018).
_OVERRIDE_COLUMNS = ("per_minute", "local_per_minute", "toll_free_per_minute", "international_per_minute",
                     "connect_fee", "min_seconds", "increment_seconds", "rounding", "charge_inbound")
# Tenants on a profile: in force now, or from a later date.
_ON_PROFILE = """(SELECT count(DISTINCT a.tenant_id) FROM tenant_profile_assignments a
                   WHERE a.profile_id = b.id AND (a.effective_from > $2 OR a.effective_from = (
                     SELECT max(x.effective_from) FROM tenant_profile_assignments x
                      WHERE x.tenant_id = a.tenant_id AND x.effective_from <= $2)))"""
_DEFAULT = """(b.id = COALESCE((SELECT d.billing_profile_id FROM tenant_defaults d WHERE d.partner_id = b.partner_id),
                              (SELECT p.id FROM billing_profiles p WHERE p.partner_id = b.partner_id
                                 AND p.builtin = 'payg' AND p.deleted_at IS NULL)))"""
_VIEW = f"SELECT b.*, {_ON_PROFILE} AS tenants, {_DEFAULT} AS is_default FROM billing_profiles b"


def terms_from(row: asyncpg.Record) -> ProfileTerms:
    return ProfileTerms(
        profile_id=row["id"], partner_id=row["partner_id"], name=row["name"], model=PricingModel(row["model"]),
        **{f: row[f] for f in BODY_FIELDS if f not in ("name", "model")})


# ---------------------------------------------------------------- profiles

async def list_profiles(conn: Conn, partner_id: str, now: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(f"{_VIEW} WHERE b.partner_id = $1 AND b.deleted_at IS NULL ORDER BY b.created_at, b.id",
                            partner_id, now)


async def get_profile(conn: Conn, partner_id: str, profile_id: str, now: datetime) -> asyncpg.Record | None:
    return await conn.fetchrow(f"{_VIEW} WHERE b.partner_id = $1 AND b.deleted_at IS NULL AND b.id = $3",
                               partner_id, now, profile_id)


async def live_ids(conn: Conn, partner_id: str) -> set[str]:
    rows = await conn.fetch("SELECT id FROM billing_profiles WHERE partner_id = $1 AND deleted_at IS NULL",
                            partner_id)
    return {r["id"] for r in rows}


async def name_taken(conn: Conn, partner_id: str, name: str, but: str | None) -> bool:
    return bool(await conn.fetchval(
        "SELECT true FROM billing_profiles WHERE partner_id = $1 AND deleted_at IS NULL"
        " AND lower(name) = lower($2) AND id IS DISTINCT FROM $3", partner_id, name, but))


async def insert_profile(conn: Conn, partner_id: str, profile_id: str, body: ProfileBody) -> None:
    await conn.execute(f"INSERT INTO billing_profiles (id, partner_id, {_COLS}) VALUES ($1, $2, {_PARAMS})",
                       profile_id, partner_id, *(getattr(body, f) for f in BODY_FIELDS))


async def update_profile(conn: Conn, partner_id: str, profile_id: str, body: ProfileBody) -> bool:
    found = await conn.fetchval(
        f"UPDATE billing_profiles SET {_SET}, updated_at = now() WHERE id = $1 AND partner_id = $2"
        " AND deleted_at IS NULL RETURNING true", profile_id, partner_id, *(getattr(body, f) for f in BODY_FIELDS))
    return bool(found)


async def lock_profile(conn: Conn, partner_id: str, profile_id: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM billing_profiles WHERE id = $1 AND partner_id = $2"
                                    " AND deleted_at IS NULL FOR UPDATE", profile_id, partner_id))


async def tenants_on(conn: Conn, profile_id: str, now: datetime) -> int:
    count: int = await conn.fetchval(f"SELECT {_ON_PROFILE} FROM billing_profiles b WHERE b.id = $1",
                                     profile_id, now)
    return count


async def followers(conn: Conn, profile_id: str) -> list[str]:
    """Live profiles whose trial ends on this one."""
    rows = await conn.fetch("SELECT name FROM billing_profiles WHERE then_profile_id = $1 AND deleted_at IS NULL",
                            profile_id)
    return [r["name"] for r in rows]


async def delete_profile(conn: Conn, profile_id: str) -> None:
    """Kept, hidden: the assignments of the past still name it (their calls were priced by it)."""
    await conn.execute("UPDATE billing_profiles SET deleted_at = now(), updated_at = now() WHERE id = $1",
                       profile_id)
    await conn.execute("UPDATE tenant_defaults SET billing_profile_id = NULL WHERE billing_profile_id = $1",
                       profile_id)


async def create_defaults(conn: Conn, partner_id: str) -> None:
    """The partner's Pay-As-You-Go and Flat Rate Starter (figures: migration 0018, the one owner)."""
    await conn.execute("SELECT billing_profiles_create_defaults($1)", partner_id)


async def set_default(conn: Conn, partner_id: str, profile_id: str | None) -> None:
    """The profile tenant defaults name (None: the Pay-As-You-Go fallback)."""
    await conn.execute(
        "INSERT INTO tenant_defaults (partner_id, billing_profile_id) VALUES ($1, $2)"
        " ON CONFLICT (partner_id) DO UPDATE SET billing_profile_id = $2, updated_at = now()",
        partner_id, profile_id)


async def default_of(conn: Conn, partner_id: str) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT billing_profile_id FROM tenant_defaults WHERE partner_id = $1", partner_id)
    return found


# ---------------------------------------------------------------- a tenant's pricing

@dataclass(frozen=True, slots=True)
class Assignment:
    since: datetime
    terms: ProfileTerms
    anchor_day: int  # its periods' first day (cdr_ingest.cycles.anchor_day)


@dataclass(frozen=True, slots=True)
class TenantPricing:
    """Everything that prices a tenant: its assignments (oldest first) and overrides."""

    tenant_id: str
    partner_id: str
    timezone: str
    created_at: datetime
    anchor_override: int | None
    assignments: tuple[Assignment, ...]
    overrides: RateOverrides | None
    overrides_at: datetime | None

    def at(self, when: datetime) -> tuple[Assignment | None, Assignment | None]:
        """The assignment in force at ``when`` and the next one."""
        current: Assignment | None = None
        for a in self.assignments:
            if a.since > when:
                return current, a
            current = a
        return current, None

    def period(self, when: datetime) -> Period:
        default = anchor_day(False, self.created_at, self.timezone, self.anchor_override)
        return period_of(when, self.timezone, [(a.since, a.anchor_day) for a in self.assignments], default)


_TENANTS = """SELECT t.id, t.partner_id, t.timezone, t.created_at, l.billing_anchor_day,
                     o.per_minute, o.local_per_minute, o.toll_free_per_minute, o.international_per_minute,
                     o.connect_fee, o.min_seconds, o.increment_seconds, o.rounding, o.charge_inbound,
                     o.updated_at AS overrides_at, o.tenant_id IS NOT NULL AS has_overrides
              FROM tenants t LEFT JOIN tenant_limits l ON l.tenant_id = t.id
              LEFT JOIN tenant_rate_overrides o ON o.tenant_id = t.id WHERE t.id = ANY($1::text[])"""


async def tenant_pricing(conn: Conn, tenant_id: str) -> TenantPricing | None:
    return (await tenant_pricing_many(conn, [tenant_id])).get(tenant_id)


async def tenant_pricing_many(conn: Conn, tenant_ids: list[str]) -> dict[str, TenantPricing]:
    """``tenant_pricing`` of many tenants in three statements (the invoice job reads a batch at
    once): each profile is read and turned into its terms once, however many tenants it has."""
    tenants = await conn.fetch(_TENANTS, tenant_ids)
    assigned = await conn.fetch(
        "SELECT tenant_id, effective_from, profile_id FROM tenant_profile_assignments"
        " WHERE tenant_id = ANY($1::text[]) ORDER BY tenant_id, effective_from", tenant_ids)
    profiles = await conn.fetch(
        "SELECT * FROM billing_profiles WHERE id IN (SELECT DISTINCT profile_id FROM tenant_profile_assignments"
        " WHERE tenant_id = ANY($1::text[]))", tenant_ids)
    terms = {r["id"]: terms_from(r) for r in profiles}
    by_tenant: dict[str, list[tuple[datetime, ProfileTerms]]] = {}
    for r in assigned:
        by_tenant.setdefault(r["tenant_id"], []).append((r["effective_from"], terms[r["profile_id"]]))
    out: dict[str, TenantPricing] = {}
    for tenant in tenants:
        tz, created, override = tenant["timezone"], tenant["created_at"], tenant["billing_anchor_day"]
        assignments = _assignments(created, tz, override, by_tenant.get(tenant["id"], []))
        overrides = RateOverrides(*(tenant[c] for c in _OVERRIDE_COLUMNS)) if tenant["has_overrides"] else None
        out[tenant["id"]] = TenantPricing(tenant["id"], tenant["partner_id"], tz, created, override, assignments,
                                          overrides, tenant["overrides_at"])
    return out


def _assignments(created: datetime, tz: str, override: int | None,
                 assigned: list[tuple[datetime, ProfileTerms]]) -> tuple[Assignment, ...]:
    flat_day = anchor_day(True, created, tz, override)
    return tuple(Assignment(since, t, flat_day if t.model == PricingModel.FLAT
                            else anchor_day(False, created, tz, override)) for since, t in assigned)


# Tenants that price their periods alike: same partner, zone, creation time, anchor day and
# assignments (each tenant's as two arrays, oldest first).
_GROUPS = """WITH a AS (SELECT tenant_id, array_agg(effective_from ORDER BY effective_from) AS since,
                               array_agg(profile_id ORDER BY effective_from) AS profiles
                          FROM tenant_profile_assignments WHERE tenant_id = ANY($1::text[]) GROUP BY tenant_id)
             SELECT t.partner_id, t.timezone, t.created_at, l.billing_anchor_day, a.since, a.profiles,
                    array_agg(t.id) AS ids
               FROM tenants t LEFT JOIN tenant_limits l ON l.tenant_id = t.id LEFT JOIN a ON a.tenant_id = t.id
              WHERE t.id = ANY($1::text[]) GROUP BY 1, 2, 3, 4, 5, 6"""


async def pricing_groups(conn: Conn, tenant_ids: list[str]) -> list[tuple[TenantPricing, list[str]]]:
    """``tenant_pricing_many`` grouped, for the invoice job's periods and terms over thousands of
    tenants: tenants with the same partner, time zone, creation time, anchor day and assignments
    have the same periods and terms, so PostgreSQL groups them and each group is built once (the
    pricing of its first tenant, with every id of the group; tenants created in bulk share one).
    Rate overrides are left out (None): they price calls, not periods or terms."""
    groups = await conn.fetch(_GROUPS, tenant_ids)
    wanted = sorted({p for g in groups for p in g["profiles"] or ()})
    profiles = await conn.fetch("SELECT * FROM billing_profiles WHERE id = ANY($1::text[])", wanted)
    terms = {r["id"]: terms_from(r) for r in profiles}
    out: list[tuple[TenantPricing, list[str]]] = []
    for g in groups:
        tz, created, override, ids = g["timezone"], g["created_at"], g["billing_anchor_day"], g["ids"]
        assigned = list(zip(g["since"] or (), [terms[p] for p in g["profiles"] or ()]))
        out.append((TenantPricing(ids[0], g["partner_id"], tz, created, override,
                                  _assignments(created, tz, override, assigned), None, None), ids))
    return out


async def terms_at(conn: Conn, tenant_id: str, at: datetime) -> ProfileTerms | None:
    """The tenant's profile in force at ``at`` (effective-dated), None without one."""
    pricing = await tenant_pricing(conn, tenant_id)
    if pricing is None:
        return None
    current, _ = pricing.at(at)
    return None if current is None else current.terms


async def period_at(conn: Conn, tenant_id: str, at: datetime) -> Period:
    """The tenant's billing period containing ``at`` (cdr_ingest.cycles: the one rule)."""
    pricing = await tenant_pricing(conn, tenant_id)
    if pricing is None:
        raise LookupError(f"no tenant {tenant_id}")
    return pricing.period(at)


async def unit_counts(conn: Conn, tenant_id: str) -> tuple[int, int, int]:
    """Extensions, local DIDs and toll-free DIDs the tenant has now."""
    extensions = await conn.fetchval("SELECT count(*) FROM extensions WHERE tenant_id = $1", tenant_id)
    numbers = await conn.fetch("SELECT number FROM dids WHERE tenant_id = $1 AND status <> 'RELEASED'", tenant_id)
    toll_free = sum(1 for r in numbers if classify(r["number"], callee_is_extension=False) is CallClass.TOLL_FREE)
    return int(extensions), len(numbers) - toll_free, toll_free


async def fees_at(conn: Conn, tenant_id: str, at: datetime) -> int:
    """The base and unit fees the tenant's spend cap counts for the period of ``at``: a full
    period of the units it has now (docs/profiles.md "Spend cap")."""
    pricing = await tenant_pricing(conn, tenant_id)
    return 0 if pricing is None else await fees_of(conn, pricing, at)


async def fees_of(conn: Conn, pricing: TenantPricing, at: datetime) -> int:
    """``fees_at`` for pricing already read."""
    current, _ = pricing.at(at)
    if current is None:
        return 0
    terms = current.terms
    if not (terms.extension_micros or terms.did_local_micros or terms.did_toll_free_micros):
        return terms.base_fee_micros  # no unit is charged: no need to count them
    return period_fees(terms, *await unit_counts(conn, pricing.tenant_id))


async def schedule(conn: Conn, tenant_id: str, effective_from: datetime, profile_id: str, now: datetime) -> None:
    """The tenant moves to ``profile_id`` at ``effective_from``; a switch already waiting
    (or a trial's end) is replaced by this one."""
    await conn.execute("DELETE FROM tenant_profile_assignments WHERE tenant_id = $1 AND effective_from > $2",
                       tenant_id, now)
    await conn.execute(
        "INSERT INTO tenant_profile_assignments (tenant_id, effective_from, profile_id) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant_id, effective_from) DO UPDATE SET profile_id = $3", tenant_id, effective_from,
        profile_id)


async def lock_tenant(conn: Conn, partner_id: str, tenant_id: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM tenants WHERE id = $1 AND partner_id = $2 FOR UPDATE",
                                    tenant_id, partner_id))


async def put_overrides(conn: Conn, tenant_id: str, overrides: RateOverrides | None) -> None:
    if overrides is None:
        await conn.execute("DELETE FROM tenant_rate_overrides WHERE tenant_id = $1", tenant_id)
        return
    cols = ", ".join(_OVERRIDE_COLUMNS)
    params = ", ".join(f"${i + 2}" for i in range(len(_OVERRIDE_COLUMNS)))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _OVERRIDE_COLUMNS)
    await conn.execute(
        f"INSERT INTO tenant_rate_overrides (tenant_id, {cols}) VALUES ($1, {params})"
        f" ON CONFLICT (tenant_id) DO UPDATE SET {updates}, updated_at = now()",
        tenant_id, *(getattr(overrides, f) for f in OVERRIDE_FIELDS))

