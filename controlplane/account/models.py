"""Records and request bodies of the account capability (msgspec Structs). Money in micro-units."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from cdr_ingest.tiers import Tier, TierPrices
from controlplane.shared import money
from provisioning.model import PartnerStatus

Micros = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Prices(msgspec.Struct, kw_only=True):
    """One price list (a tier's, or an Enterprise contract's); None: custom, or unlimited extensions."""

    effective_from: datetime
    monthly_fee_micros: int | None
    max_extensions: int | None
    per_extension_micros: int | None
    did_local_monthly_micros: int | None
    did_toll_free_monthly_micros: int | None
    local_per_minute_micros: int | None
    toll_free_per_minute_micros: int | None
    currency: str = msgspec.field(default_factory=money.currency)

    @classmethod
    def of(cls, p: TierPrices) -> Prices:
        return cls(effective_from=p.effective_from, monthly_fee_micros=p.monthly_fee, max_extensions=p.max_extensions,
                   per_extension_micros=p.per_extension, did_local_monthly_micros=p.did_local_monthly,
                   did_toll_free_monthly_micros=p.did_toll_free_monthly, local_per_minute_micros=p.local_per_minute,
                   toll_free_per_minute_micros=p.toll_free_per_minute)


class Account(msgspec.Struct, kw_only=True):
    partner_id: str
    name: str
    tier: Tier
    status: PartnerStatus
    trial_ends_at: datetime | None
    trial_days_left: int | None  # whole days, while TRIAL
    activated_at: datetime | None
    pending_tier: Tier | None  # a downgrade waiting for the next cycle
    pending_tier_effective_at: datetime | None
    extension_count: int
    prices: Prices | None  # in force now; None: Enterprise without a contract yet
    scheduled_prices: Prices | None  # the next posted change of this partner's prices, if any
    cycle: str  # YYYY-MM (UTC)
    next_charge_at: datetime | None  # when the monthly fee is charged next (ACTIVE only)
    platform_fee_billing: str  # card (the default card on the 1st) | invoice (the platform invoices it)


class PlanChangeRequest(_Body, kw_only=True):
    tier: Tier
    # true: only say what the change would do (the portal's summary modal); nothing changes
    preview: bool = False


class PlanChange(msgspec.Struct, kw_only=True):
    current_tier: Tier
    tier: Tier
    kind: str  # upgrade | downgrade | cancel_downgrade
    effective_at: datetime
    new_monthly_fee_micros: int
    prorated_charge_micros: int
    charge_now_micros: int
    applied: bool
    invoice_id: str | None = None
    currency: str = msgspec.field(default_factory=money.currency)


class Activation(msgspec.Struct, kw_only=True):
    account: Account
    platform_fee_micros: int  # prorated to the rest of the month
    wallet_credit_micros: int
    charged_micros: int  # to the card (0 for a platform comp activation)
    setup_fees_micros: int  # trial numbers' setup fees, drawn from the wallet
    invoice_id: str | None
    currency: str = msgspec.field(default_factory=money.currency)


class CompActivationRequest(_Body, kw_only=True):
    reason: Reason
    # true (default): the platform invoices the monthly fee; false: the default card pays it on the 1st
    invoiced: bool = True


class InvoiceLine(msgspec.Struct, kw_only=True):
    description: str
    amount_micros: int
    currency: str = msgspec.field(default_factory=money.currency)


class Invoice(msgspec.Struct, kw_only=True):
    id: str
    number: str  # SUB-YYYY-NNNNNN
    partner_id: str
    kind: str  # always subscription_invoice (seed 003 "Subscription invoices")
    purpose: str  # activation | monthly | upgrade
    cycle: str
    tier: Tier
    amount_micros: int
    lines: list[InvoiceLine]
    created_at: datetime
    pdf_url: str
    currency: str = msgspec.field(default_factory=money.currency)


class _PriceFields(_Body, kw_only=True):
    monthly_fee_micros: Micros
    max_extensions: Annotated[int, msgspec.Meta(ge=0, le=10**7)] | None = None  # None: unlimited
    per_extension_micros: Micros
    did_local_monthly_micros: Micros
    did_toll_free_monthly_micros: Micros
    local_per_minute_micros: Micros
    toll_free_per_minute_micros: Micros


class TierPriceChangeRequest(_PriceFields, kw_only=True):
    tier: Tier
    effective_from: datetime


class TierPriceChange(msgspec.Struct, kw_only=True):
    tier: Tier
    prices: Prices
    partners_notified: int
    scheduled_at: datetime


class EnterprisePricesRequest(_PriceFields, kw_only=True):
    effective_from: datetime | None = None  # default: now


class TierPriceList(msgspec.Struct, kw_only=True):
    tier: Tier
    versions: list[Prices]


def tier_prices(tier: Tier, effective_from: datetime, body: _PriceFields) -> TierPrices:
    return TierPrices(tier, effective_from, body.monthly_fee_micros, body.max_extensions, body.per_extension_micros,
                      body.did_local_monthly_micros, body.did_toll_free_monthly_micros,
                      body.local_per_minute_micros, body.toll_free_per_minute_micros)
