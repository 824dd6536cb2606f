"""A tenant's billing context (profile timeline, tier, decks, period anchor), cached briefly.

Read by the recorder to price each finished call and by the limits capability to
price admission (``cdr_ingest.pricing``): both build their own ``BillingContexts``
from the config (``wholesale_deck``), so neither depends on the other being installed.
The tenant's pricing (profiles, overrides, period rule) is controlplane.profiles'.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg

from cdr_ingest.cycles import anchor_day
from cdr_ingest.pricing import BillingProfile
from cdr_ingest.rates import RateDeck, load_deck_csv
from cdr_ingest.records import PricingSpan, TenantBilling
from cdr_ingest.tiers import Tier
from controlplane.account import store as account_store
from controlplane.calls import store
from controlplane.config import Config
from controlplane.profiles import store as profiles_store
from controlplane.profiles.models import ProfileTerms
from controlplane.profiles.rules import rate_card


def wholesale_deck(config: Config) -> RateDeck | None:
    """The platform's wholesale deck (``calls.wholesale_deck``), None without one."""
    path = config.calls.wholesale_deck
    return load_deck_csv(Path(path).read_text()) if path else None


@dataclass(frozen=True, slots=True)
class _Cached:
    billing: TenantBilling | None
    expires: float


class BillingContexts:
    def __init__(self, *, wholesale_deck: RateDeck | None = None, ttl: float = 5.0) -> None:
        self.wholesale_deck = wholesale_deck
        self.ttl = ttl
        self._cached: dict[str, _Cached] = {}
        self._decks: dict[tuple[str, object], RateDeck] = {}

    def forget(self, tenant_id: str) -> None:
        """Drop the cached billing context (its profile just changed)."""
        self._cached.pop(tenant_id, None)

    async def __call__(self, conn: store.Conn, tenant_id: str) -> TenantBilling | None:
        cached = self._cached.get(tenant_id)
        now = time.monotonic()
        if cached is not None and cached.expires > now:
            return cached.billing
        row = await store.tenant_billing(conn, tenant_id)
        pricing = None if row is None else await profiles_store.tenant_pricing(conn, tenant_id)
        billing = None if row is None or pricing is None else self._billing_from(row, pricing)
        if billing is not None:  # the operator's dated prices (controlplane.account), ToS 6.5
            billing = replace(billing, schedule=await account_store.schedule_for(conn, billing.partner_id,
                                                                                  billing.tier))
        self._cached[tenant_id] = _Cached(billing, now + self.ttl)
        return billing

    def forget_all(self) -> None:
        """Drop every cached context (a profile that any tenant may use changed)."""
        self._cached.clear()

    def _billing_from(self, row: asyncpg.Record, pricing: profiles_store.TenantPricing) -> TenantBilling:
        deck = None
        if row["deck_csv"] is not None:
            key = (row["partner_id"], row["deck_at"])
            deck = self._decks.get(key)
            if deck is None:
                deck = self._decks[key] = load_deck_csv(row["deck_csv"])

        def card(terms: ProfileTerms | None) -> BillingProfile | None:
            found = rate_card(terms, pricing.overrides, row["tenant_id"] if terms is None else terms.profile_id)
            return None if found is None else replace(found, international_deck=deck)

        spans = tuple(PricingSpan(a.since, card(a.terms), a.anchor_day) for a in pricing.assignments)
        return TenantBilling(row["tenant_id"], row["partner_id"], Tier(row["tier"]), card(None),
                             self.wholesale_deck, pricing.timezone,
                             anchor_day(False, pricing.created_at, pricing.timezone, pricing.anchor_override),
                             spans=spans)
