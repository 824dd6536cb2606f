"""Records of collection and the API's bodies and views (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import msgspec

from controlplane.collection.rules import StripeMode
from controlplane.payments.models import ChargeStatus as ChargeStatus  # one life cycle for both
from controlplane.shared import money


class CreditNoteStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class ModeSettings:
    """A partner's Stripe mode as stored (the secret key still sealed)."""

    partner_id: str
    mode: StripeMode
    connect_account_id: str | None
    secret_key_sealed: bytes | None
    secret_key_last4: str | None
    publishable_key: str | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class TenantCharge:
    """One attempt to charge a tenant's card for an invoice, by (partner, reference)."""

    charge_id: str
    partner_id: str
    tenant_id: str
    invoice_id: str
    attempt: int
    reference: str
    mode: StripeMode
    account: str
    amount_micros: int
    application_fee_micros: int
    currency: str
    status: ChargeStatus
    customer_id: str
    method_id: str
    provider_charge_id: str | None
    decline_code: str | None
    decline_message: str | None
    recorded: bool


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A payment applied to an invoice (card or manual)."""

    payment_id: str
    partner_id: str
    tenant_id: str
    invoice_id: str
    reference: str
    source: str
    mode: str | None
    charge_id: str | None
    amount_micros: int
    fee_micros: int
    currency: str
    note: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CreditNoteRecord:
    """A refund of (part of) an invoice; numbered once the provider refunded it."""

    credit_note_id: str
    partner_id: str
    tenant_id: str
    invoice_id: str
    reference: str
    status: CreditNoteStatus
    number: str | None
    amount_micros: int
    usage_credit_micros: int
    currency: str
    reason: str | None
    failure: str | None
    created_at: datetime
    issued_at: datetime | None


# ---------------------------------------------------------------- API bodies


class ConnectSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    account_id: str


class CustomKeys(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    secret_key: str
    publishable_key: str | None = None


class StripeModeUpdate(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    mode: str
    connect: ConnectSettings | None = None
    custom_keys: CustomKeys | None = None


class ManualPayment(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    amount_micros: int
    reference: str
    note: str | None = None


class RefundRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    amount_micros: int
    reason: str | None = None
    # Idempotency: the same reference answers the same credit note (none: a new refund).
    reference: str | None = None
    # Credit the refunded usage on the tenant's next invoice (seed 003); false: the money back
    # on the card is the whole remedy.
    credit_usage: bool = True


# ---------------------------------------------------------------- API views


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """Platform mode: what tenants paid on our account and what we owe the partner for it."""

    collected_micros: int
    fees_micros: int
    refunded_micros: int
    owed_micros: int
    currency: str = msgspec.field(default_factory=money.currency)


class StripeModeView(msgspec.Struct, frozen=True, kw_only=True):
    mode: str
    connect_account_id: str | None
    secret_key_last4: str | None
    publishable_key: str | None
    application_fee_rate: str
    updated_at: datetime | None
    settlement: Settlement


class SetupIntentView(msgspec.Struct, frozen=True, kw_only=True):
    setup_intent_id: str
    tenant_id: str
    mode: str
    stripe_account: str | None
    publishable_key: str | None
    secrets: dict[str, str]


class TenantMethodView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant_id: str
    type: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool
    created_at: datetime


class PaymentView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    invoice_id: str
    tenant_id: str
    source: str
    reference: str
    amount_micros: int
    fee_micros: int
    currency: str
    note: str | None
    created_at: datetime

    @classmethod
    def of(cls, p: PaymentRecord) -> PaymentView:
        return cls(id=p.payment_id, invoice_id=p.invoice_id, tenant_id=p.tenant_id, source=p.source,
                   reference=p.reference, amount_micros=p.amount_micros, fee_micros=p.fee_micros,
                   currency=p.currency, note=p.note, created_at=p.created_at)


class InvoicePaymentResult(msgspec.Struct, frozen=True, kw_only=True):
    payment: PaymentView
    invoice_status: str
    paid_micros: int
    outstanding_micros: int
    currency: str


class CreditNoteView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    number: str | None
    status: str
    invoice_id: str
    tenant_id: str
    reference: str
    amount_micros: int
    usage_credit_micros: int
    currency: str
    reason: str | None
    created_at: datetime
    issued_at: datetime | None

    @classmethod
    def of(cls, c: CreditNoteRecord) -> CreditNoteView:
        return cls(id=c.credit_note_id, number=c.number, status=c.status.value, invoice_id=c.invoice_id,
                   tenant_id=c.tenant_id, reference=c.reference, amount_micros=c.amount_micros,
                   usage_credit_micros=c.usage_credit_micros, currency=c.currency, reason=c.reason,
                   created_at=c.created_at, issued_at=c.issued_at)

