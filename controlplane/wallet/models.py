"""The wallet's records, bodies and views, and its pure rules (no I/O).

Money is integer micro-units (1 USD = 1,000,000); a credit is > 0, a debit < 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import msgspec

from controlplane.shared import money
from controlplane.shared.problems import FieldError

MICROS_PER_CENT = 10_000
MAX_AMOUNT_MICROS = 1_000_000_000_000  # one million currency units in one movement


class EntryKind(StrEnum):
    TOP_UP = "top_up"
    AUTO_RECHARGE = "auto_recharge"
    USAGE_LOCAL = "usage_local"
    USAGE_TOLL_FREE = "usage_toll_free"
    USAGE_INTERNATIONAL = "usage_international"
    MONTHLY_EXTENSION = "monthly_extension"
    MONTHLY_DID_LOCAL = "monthly_did_local"
    MONTHLY_DID_TOLL_FREE = "monthly_did_toll_free"
    SETUP_FEE = "setup_fee"
    REFUND = "refund"
    MANUAL_ADJUSTMENT = "manual_adjustment"


# A call's usage kind by its class (cdr_ingest.classify.CallClass values). Premium-rate
# calls are billed and refused in trial like international ones; the classes that cost
# nothing at wholesale (internal, emergency, invalid), if they ever did, count as local.
_USAGE_KINDS = {"toll_free": EntryKind.USAGE_TOLL_FREE, "international": EntryKind.USAGE_INTERNATIONAL,
                "premium": EntryKind.USAGE_INTERNATIONAL}


def usage_kind(call_class: str) -> EntryKind:
    return _USAGE_KINDS.get(call_class, EntryKind.USAGE_LOCAL)


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger movement; ``reference`` makes it happen once per partner (docs/wallet.md)."""

    partner_id: str
    kind: EntryKind
    amount_micros: int  # credit > 0, debit < 0
    reference: str
    tenant_id: str | None = None
    call_id: str | None = None
    note: str | None = None
    # When its cause happened (a call's start): usage is drawn only for causes after the
    # partner's activation, so a call placed in trial never is, whenever it is recorded.
    occurred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Posted:
    """What ``post`` did: the entry (new or the one already there), the balance after it, and
    whether this call wrote it. ``amount_micros`` is the stored entry's (a repeat may differ)."""

    entry_id: int
    balance_micros: int
    created: bool
    amount_micros: int


@dataclass(frozen=True, slots=True)
class RechargeSettings:
    enabled: bool
    threshold_micros: int
    amount_micros: int
    off_reason: str | None = None


# ---------------------------------------------------------------- references (docs/wallet.md)

def call_reference(call_id: str) -> str:
    return f"call:{call_id}"


def setup_reference(did_id: str) -> str:
    return f"setup:{did_id}"


def top_up_reference(idempotency_key: str) -> str:
    return f"topup:{idempotency_key}"


def adjustment_reference(operator_reference: str) -> str:
    return f"adjust:{operator_reference}"


def recharge_reference(partner_id: str, now: datetime) -> str:
    """One per partner and UTC clock hour: auto-recharge charges at most once an hour."""
    return f"recharge:{partner_id}:{now.astimezone(UTC).strftime('%Y-%m-%dT%H')}"


# ---------------------------------------------------------------- decisions

def needs_recharge(balance_micros: int, settings: RechargeSettings) -> bool:
    return settings.enabled and settings.amount_micros > 0 and balance_micros < settings.threshold_micros


def amount_errors(field: str, value: int, *, cents: bool, allow_zero: bool = False) -> list[FieldError]:
    """What is wrong with an amount: > 0 (or >= 0), at most the cap, whole cents for a card."""
    low = 0 if allow_zero else 1
    if not low <= value <= MAX_AMOUNT_MICROS:
        bound = "0" if allow_zero else "greater than 0"
        return [FieldError(field, f"{field}: {bound} and at most {MAX_AMOUNT_MICROS} micro-units")]
    if cents and value % MICROS_PER_CENT:
        return [FieldError(field, f"{field}: whole cents ({MICROS_PER_CENT} micro-units each);"
                                  " a card is charged no finer")]
    return []


# ---------------------------------------------------------------- bodies and views

class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class TopUpBody(_Body):
    amount_micros: int


class AdjustmentBody(_Body):
    """An operator's adjustment; ``reference`` (a transfer id, a ticket) makes it happen once."""

    amount_micros: int
    reason: str
    reference: str
    direction: str = "credit"  # credit | debit
    partner_id: str | None = None  # else X-Partner-Id


class CreditBody(_Body):
    """The older ``POST /v1/wallet/credits``: a credit adjustment whose note is the reason."""

    amount_micros: int
    reference: str
    note: str | None = None


class AutoRechargeBody(_Body):
    enabled: bool
    threshold_micros: int
    amount_micros: int


class AutoRechargeView(msgspec.Struct, kw_only=True):
    enabled: bool
    threshold_micros: int
    amount_micros: int
    # why the platform turned it off (payment_declined, no_payment_method); null: the partner's choice
    disabled_reason: str | None = None
    currency: str = msgspec.field(default_factory=money.currency)


class WalletView(msgspec.Struct, kw_only=True):
    partner_id: str
    balance_micros: int
    auto_recharge: AutoRechargeView
    low_balance_threshold_micros: int
    currency: str = msgspec.field(default_factory=money.currency)  # ISO 4217 (billing.currency)


class EntryView(msgspec.Struct, kw_only=True):
    id: str
    partner_id: str
    kind: str
    amount_micros: int
    reference: str
    tenant_id: str | None
    call_id: str | None
    note: str | None
    created_at: datetime
    currency: str = msgspec.field(default_factory=money.currency)


class PostedView(msgspec.Struct, kw_only=True):
    """A movement and the balance after it (top-up, adjustment, credit)."""

    entry: EntryView
    balance_micros: int
    currency: str = msgspec.field(default_factory=money.currency)


class CreditView(msgspec.Struct, kw_only=True):
    """The older credit route's answer (unchanged shape)."""

    partner_id: str
    reference: str
    amount_micros: int
    note: str | None
    created_at: datetime
    balance_micros: int
    currency: str = msgspec.field(default_factory=money.currency)


ENTRY_CSV_COLUMNS = ("id", "created_at", "kind", "amount_micros", "currency", "reference", "tenant_id",
                     "call_id", "note")
