"""Records of payments: charges, and the API's views of payment methods."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import msgspec

# Stripe's ids: a prefix and letters/digits (test ids such as pm_card_visa have underscores).
METHOD_ID = re.compile(r"pm_[A-Za-z0-9_]{1,96}")


class ChargeStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    DECLINED = "DECLINED"


@dataclass(frozen=True, slots=True)
class Charge:
    """One charge of a partner's card, by (partner_id, reference)."""

    charge_id: str
    partner_id: str
    reference: str
    amount_micros: int
    status: ChargeStatus
    provider_charge_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ChargeRow:
    """A charge with what a retry needs (the key's attempt, the card it was started on)."""

    charge: Charge
    currency: str
    description: str
    attempt: int
    customer_id: str
    method_id: str
    decline_code: str | None
    decline_message: str | None


class PaymentMethodAttach(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    payment_method_id: str


class PaymentMethodView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool
    created_at: datetime
