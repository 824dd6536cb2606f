"""A tenant's billing context (profile, tier, decks, cycle anchor), cached briefly.

Read by the recorder to price each finished call and by the limits capability to
price admission (``cdr_ingest.pricing``): both build their own ``BillingContexts``
from the config (``wholesale_deck``), so neither depends on the other being installed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg

from cdr_ingest.pricing import BillingProfile
from cdr_ingest.rates import RateDeck, Rounding, load_deck_csv
from cdr_ingest.records import TenantBilling
from cdr_ingest.tiers import Tier
from controlplane.account import store as account_store
from controlplane.calls import store
from controlplane.config import Config


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
        billing = None if row is None else self._billing_from(row)
        if billing is not None:  # the operator's dated prices (controlplane.account), ToS 6.5
            billing = replace(billing, schedule=await account_store.schedule_for(conn, billing.partner_id,
                                                                                  billing.tier))
        self._cached[tenant_id] = _Cached(billing, now + self.ttl)
        return billing

    def _billing_from(self, row: asyncpg.Record) -> TenantBilling:
        deck = None
        if row["deck_csv"] is not None:
            key = (row["partner_id"], row["deck_at"])
            deck = self._decks.get(key)
            if deck is None:
                deck = self._decks[key] = load_deck_csv(row["deck_csv"])
        profile = None
        if row["per_minute"] is not None:
            profile = BillingProfile(
                profile_id=row["tenant_id"], per_minute=row["per_minute"],
                local_per_minute=row["local_per_minute"], toll_free_per_minute=row["toll_free_per_minute"],
                international_per_minute=row["international_per_minute"], international_deck=deck,
                connect_fee=row["connect_fee"], min_seconds=row["min_seconds"],
                increment_seconds=row["increment_seconds"], rounding=Rounding(row["rounding"]),
                charge_inbound=row["charge_inbound"])
        return TenantBilling(row["tenant_id"], row["partner_id"], Tier(row["tier"]), profile,
                             self.wholesale_deck, row["timezone"], row["anchor_day"])
