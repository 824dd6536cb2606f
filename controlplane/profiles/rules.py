"""The pure rules of billing profiles: the per-call rate card a tenant is priced by, the
monthly fees a profile charges for a tenant's units, and the checks across fields."""

from __future__ import annotations

from dataclasses import asdict, replace

from cdr_ingest.pricing import BillingProfile
from cdr_ingest.rates import Rounding
from controlplane.profiles.models import ProfileBody, ProfileTerms, RateOverrides
from controlplane.shared.problems import FieldError


def rate_card(terms: ProfileTerms | None, overrides: RateOverrides | None, card_id: str) -> BillingProfile | None:
    """The per-call pricing of a tenant: its profile's, each rate the tenant overrides
    replaced. Overrides alone (a tenant without a profile) price from a zero card, as the
    per-tenant profiles of old did; neither: None (calls noted ``no_billing_profile``)."""
    if terms is None and overrides is None:
        return None
    base = RateOverrides(0, None, None, None, 0, 6, 6, "half_up", True) if terms is None else RateOverrides(
        terms.per_minute_micros, terms.local_per_minute_micros, terms.toll_free_per_minute_micros,
        terms.international_per_minute_micros, terms.connect_fee_micros, terms.min_seconds,
        terms.increment_seconds, terms.rounding, terms.charge_inbound)
    if overrides is not None:
        base = replace(base, **{k: v for k, v in asdict(overrides).items() if v is not None})
    return BillingProfile(
        profile_id=card_id, per_minute=base.per_minute_micros or 0, local_per_minute=base.local_per_minute_micros,
        toll_free_per_minute=base.toll_free_per_minute_micros,
        international_per_minute=base.international_per_minute_micros, connect_fee=base.connect_fee_micros or 0,
        min_seconds=6 if base.min_seconds is None else base.min_seconds,
        increment_seconds=base.increment_seconds or 6, rounding=Rounding(base.rounding or "half_up"),
        charge_inbound=base.charge_inbound is not False,
        included_minutes=0 if terms is None else terms.included_minutes)


def period_fees(terms: ProfileTerms, extensions: int, dids_local: int, dids_toll_free: int) -> int:
    """A full period's base fee and unit fees for the units the tenant has: extensions and
    DIDs above the included ones at the unit rates. Included DIDs cover local numbers
    first (they are the cheaper to give away)."""
    over_ext = max(0, extensions - terms.included_extensions)
    local_included = min(dids_local, terms.included_dids)
    toll_free_included = min(dids_toll_free, terms.included_dids - local_included)
    return (terms.base_fee_micros + over_ext * terms.extension_micros
            + (dids_local - local_included) * terms.did_local_micros
            + (dids_toll_free - toll_free_included) * terms.did_toll_free_micros)


def check_profile(body: ProfileBody, profile_id: str | None, partner_profiles: set[str]) -> list[FieldError]:
    """What the types cannot say; every field at fault, not the first."""
    errors: list[FieldError] = []
    if not body.name.strip():
        errors.append(FieldError("name", "name: must not be blank"))
    if (body.trial_days is None) != (body.then_profile_id is None):
        field = "then_profile_id" if body.then_profile_id is None else "trial_days"
        errors.append(FieldError(field, f"{field}: a trial needs both trial_days and then_profile_id"))
    if body.then_profile_id is not None:
        if body.then_profile_id == profile_id:
            errors.append(FieldError("then_profile_id", "then_profile_id: a profile cannot follow itself"))
        elif body.then_profile_id not in partner_profiles:
            errors.append(FieldError("then_profile_id", "then_profile_id: no such billing profile"))
    if body.suspend_after_days is not None and body.suspend_after_days < body.overdue_after_days:
        errors.append(FieldError("suspend_after_days",
                                 "suspend_after_days: must not come before overdue_after_days"))
    return errors
