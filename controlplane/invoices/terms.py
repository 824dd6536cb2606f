"""The invoice's view of a tenant's billing profile, read through the profiles capability's store
(``tenant_pricing``: the assignments ``terms_at`` and ``period_at`` answer from, read once for both;
the profiles capability owns the profile and the period rule).

``last_cycles`` is the job's default ``TermsLookup``: the tenant's last period that has ended at
``now`` (Flat: anniversary; PAYG: the calendar month, in the tenant's time zone) and the terms
that applied to it (a profile switch applies at the next period, so: the terms at its start)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from controlplane.db.connection import Connection
from controlplane.invoices.compose import Cycle
from controlplane.invoices.models import BillingTerms
from controlplane.profiles import store as profiles
from controlplane.profiles.models import ProfileTerms

_TICK = timedelta(microseconds=1)


def billing_terms(t: ProfileTerms) -> BillingTerms:
    return BillingTerms(
        model=str(t.model), base_fee_micros=t.base_fee_micros, included_extensions=t.included_extensions,
        included_dids=t.included_dids, included_minutes=t.included_minutes, extension_micros=t.extension_micros,
        did_local_micros=t.did_local_micros, did_toll_free_micros=t.did_toll_free_micros,
        per_minute_micros=t.per_minute_micros, local_per_minute_micros=t.local_per_minute_micros,
        toll_free_per_minute_micros=t.toll_free_per_minute_micros,
        international_per_minute_micros=t.international_per_minute_micros, net_terms_days=t.net_terms_days,
        profile_name=t.name)


async def last_cycles(conn: Connection, tenant_ids: Sequence[str], now: datetime) -> dict[str, Cycle]:
    out: dict[str, Cycle] = {}
    # Equal cycles (same period, equal terms: every partner's copy of a default profile) as one
    # object: the job computes the fixed lines once per cycle object, and the minutes plan is
    # cached per terms (calc._minute_plan), where a hit on the very object skips comparing fields.
    same: dict[Cycle, Cycle] = {}
    same_terms: dict[BillingTerms, BillingTerms] = {}
    # The cycle depends only on the time zone, the creation time, the anchor and the assignments:
    # the tenants that share them come as one group (profiles.pricing_groups, grouped in
    # PostgreSQL), so the period rule runs once per group, not per tenant.
    for pricing, ids in await profiles.pricing_groups(conn, list(tenant_ids)):
        cycle = last_cycle(pricing, now)
        if cycle is None:
            continue
        terms = same_terms.setdefault(cycle.terms, cycle.terms)
        if terms is not cycle.terms:
            cycle = Cycle(cycle.start, cycle.end, terms)
        cycle = same.setdefault(cycle, cycle)
        for tenant_id in ids:
            out[tenant_id] = cycle
    return out


def last_cycle(pricing: profiles.TenantPricing, now: datetime) -> Cycle | None:
    ended = pricing.period(pricing.period(now).start - _TICK)
    current, following = pricing.at(ended.start)
    if current is None and following is not None and following.since < ended.end:
        current = following  # the tenant's first, partial period (PAYG: created mid-month)
    return None if current is None else Cycle(ended.start, ended.end, billing_terms(current.terms))


async def net_terms_days(conn: Connection, tenant_id: str, now: datetime) -> int:
    """The net terms of the tenant's profile now (an off-cycle invoice's due date); 15 without one."""
    terms = await profiles.terms_at(conn, tenant_id, now)
    return 15 if terms is None else terms.net_terms_days
