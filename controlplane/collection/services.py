"""The partner's Stripe mode, tenants' saved cards and manual payments (docs/collection.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog

from controlplane import audit
from controlplane.collection import store
from controlplane.collection.charges import apply
from controlplane.collection.models import (
    InvoicePaymentResult,
    ManualPayment,
    ModeSettings,
    PaymentRecord,
    PaymentView,
    SetupIntentView,
    Settlement,
    StripeModeUpdate,
    StripeModeView,
    TenantMethodView,
)
from controlplane.collection.providers import PartnerProvider, Resolver
from controlplane.collection.rules import (
    CONNECT_ACCOUNT,
    FEE_RATE,
    PUBLISHABLE_KEY,
    REFERENCE,
    SECRET_KEY,
    StripeMode,
)
from controlplane.db.connection import Connection
from controlplane.events.emit import emit
from controlplane.invoices import store as invoices
from controlplane.invoices.models import Invoice, InvoiceStatus
from controlplane.payments.models import METHOD_ID
from controlplane.shared import money
from controlplane.shared.ids import new_id
from controlplane.shared.payments import PaymentUnavailable
from controlplane.shared.problems import FieldError, Problem
from controlplane.signals import Signals

log = structlog.get_logger(__name__)
PAYABLE = frozenset({InvoiceStatus.SENT, InvoiceStatus.OVERDUE, InvoiceStatus.PARTIALLY_PAID})


def check_method_id(method_id: str, field: str = "payment_method_id") -> str:
    if not METHOD_ID.fullmatch(method_id):
        raise Problem(422, f"{field}: a payment method id (pm_...) from Stripe.js, not card data", field=field)
    return method_id


def check_mode(body: StripeModeUpdate) -> tuple[StripeMode, str | None, str | None, str | None]:
    """(mode, connected account, secret key, publishable key), or a 422 naming every field at fault."""
    errors: list[FieldError] = []
    try:
        mode = StripeMode(body.mode)
    except ValueError:
        errors.append(FieldError("mode", "mode: one of platform, connect, custom_keys"))
        mode = StripeMode.PLATFORM
    account = secret = publishable = None
    if mode is StripeMode.CONNECT:
        if body.connect is None:
            errors.append(FieldError("connect", "connect: the connected account (account_id acct_...) is required"))
        elif not CONNECT_ACCOUNT.fullmatch(body.connect.account_id):
            errors.append(FieldError("connect.account_id", "connect.account_id: a Stripe account id (acct_...)"))
        else:
            account = body.connect.account_id
    elif body.connect is not None:
        errors.append(FieldError("connect", "connect: only with mode connect"))
    if mode is StripeMode.CUSTOM_KEYS:
        if body.custom_keys is None:
            errors.append(FieldError("custom_keys", "custom_keys: the secret key (sk_live_... or sk_test_...) is"
                                                    " required"))
        else:
            if not SECRET_KEY.fullmatch(body.custom_keys.secret_key):
                errors.append(FieldError("custom_keys.secret_key",
                                         "custom_keys.secret_key: a Stripe secret key (sk_live_... or sk_test_...)"))
            else:
                secret = body.custom_keys.secret_key
            pk = body.custom_keys.publishable_key
            if pk is not None and not PUBLISHABLE_KEY.fullmatch(pk):
                errors.append(FieldError("custom_keys.publishable_key",
                                         "custom_keys.publishable_key: a Stripe publishable key (pk_...)"))
            publishable = pk
    elif body.custom_keys is not None:
        errors.append(FieldError("custom_keys", "custom_keys: only with mode custom_keys"))
    if errors:
        raise Problem(422, errors[0].message, errors=errors)
    return mode, account, secret, publishable


def _audited(s: ModeSettings) -> dict[str, str | None]:
    return {"mode": s.mode.value, "connect_account_id": s.connect_account_id,
            "secret_key_last4": s.secret_key_last4, "publishable_key": s.publishable_key}


def not_found(what: str) -> Problem:
    return Problem(404, f"no {what} for this partner", code="not_found")


async def _locked_method(conn: Connection, tenant_id: str, method_id: str) -> TenantMethodView:
    """The tenant's saved card, its methods locked for the rest of the transaction."""
    await store.lock_tenant(conn, tenant_id)
    current = await store.method(conn, tenant_id, method_id)
    if current is None:
        raise not_found(f"payment method {method_id}")
    return current


@dataclass(frozen=True)
class Collection:
    pool: asyncpg.Pool
    resolver: Resolver
    signals: Signals

    # ------------------------------------------------------------ the Stripe mode

    async def get_mode(self, partner_id: str) -> StripeModeView:
        async with self.pool.acquire() as conn:
            if not await store.partner_exists(conn, partner_id):
                raise not_found(f"partner {partner_id}")
            s = await store.mode(conn, partner_id)
            collected, fees, refunded, refunded_fees = await store.settlement(conn, partner_id)
        return StripeModeView(
            mode=s.mode.value, connect_account_id=s.connect_account_id, secret_key_last4=s.secret_key_last4,
            publishable_key=s.publishable_key,
            application_fee_rate="0" if s.mode is StripeMode.CUSTOM_KEYS else FEE_RATE, updated_at=s.updated_at,
            settlement=Settlement(collected_micros=collected, fees_micros=fees, refunded_micros=refunded,
                                  owed_micros=(collected - fees) - (refunded - refunded_fees)))

    async def set_mode(self, partner_id: str, body: StripeModeUpdate) -> StripeModeView:
        mode, account, secret, publishable = check_mode(body)
        settings = ModeSettings(
            partner_id=partner_id, mode=mode, connect_account_id=account,
            secret_key_sealed=None if secret is None else self.resolver.seal(partner_id, secret),
            secret_key_last4=None if secret is None else secret[-4:], publishable_key=publishable, updated_at=None)
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.partner_exists(conn, partner_id):
                raise not_found(f"partner {partner_id}")
            before = await store.mode(conn, partner_id)
            await store.save_mode(conn, settings)
            # The key itself never reaches the log: its last 4 are redacted too (a "secret" field).
            await audit.record(conn, action="update", resource="stripe_mode", resource_id=partner_id,
                               partner_id=partner_id, before=_audited(before), after=_audited(settings))
        log.info("collection.mode_set", partner_id=partner_id, mode=mode.value)
        return await self.get_mode(partner_id)

    # ------------------------------------------------------------ tenants' cards

    async def _tenant(self, partner_id: str, tenant_id: str) -> tuple[str, str]:
        found = await store.tenant(self.pool, partner_id, tenant_id)
        if found is None:
            raise not_found(f"tenant {tenant_id}")
        return found

    async def _customer(self, partner: PartnerProvider, partner_id: str, tenant_id: str) -> str:
        existing = await store.customer_id(self.pool, tenant_id, partner.account)
        if existing is not None:
            return existing
        name, email = await self._tenant(partner_id, tenant_id)
        async with self.pool.acquire() as conn, conn.transaction():
            await store.lock_key(conn, f"collection.customer:{tenant_id}:{partner.account}")
            existing = await store.customer_id(conn, tenant_id, partner.account)
            if existing is not None:
                return existing
            created = await partner.provider.create_tenant_customer(
                tenant_id=tenant_id, email=email, name=name,
                idempotency_key=f"tenant-customer:{tenant_id}:{partner.account}")
            return await store.save_customer(conn, partner_id, tenant_id, partner.account, created)

    async def setup_intent(self, partner_id: str, tenant_id: str) -> SetupIntentView:
        await self._tenant(partner_id, tenant_id)
        partner = await self.resolver.for_partner(self.pool, partner_id)
        customer = await self._customer(partner, partner_id, tenant_id)
        intent = await partner.provider.create_setup_intent(customer_id=customer, idempotency_key=new_id("seti"))
        return SetupIntentView(setup_intent_id=intent.setup_intent_id, tenant_id=tenant_id, mode=partner.mode.value,
                               stripe_account=partner.stripe_account, publishable_key=partner.publishable_key,
                               secrets={"client_secret": intent.client_secret})

    async def attach(self, partner_id: str, tenant_id: str, method_id: str) -> tuple[TenantMethodView, bool]:
        check_method_id(method_id)
        await self._tenant(partner_id, tenant_id)
        owner = await store.method_owner(self.pool, method_id)
        if owner == tenant_id:
            saved = await store.method(self.pool, tenant_id, method_id)
            assert saved is not None
            return saved, False
        if owner is not None:
            raise Problem(409, f"payment method {method_id} belongs to another account", code="conflict",
                          field="payment_method_id")
        partner = await self.resolver.for_partner(self.pool, partner_id)
        customer = await self._customer(partner, partner_id, tenant_id)
        card = await partner.provider.attach_method(customer_id=customer, method_id=method_id)
        async with self.pool.acquire() as conn, conn.transaction():
            await store.lock_tenant(conn, tenant_id)
            first = await store.default_method(conn, tenant_id, partner.account) is None
            await store.insert_method(conn, partner_id, tenant_id, partner.account, card, default=first)
            saved = await store.method(conn, tenant_id, method_id)
            if saved is None:
                raise Problem(409, f"payment method {method_id} belongs to another account", code="conflict",
                              field="payment_method_id")
            await emit(conn, "payment_method.attached", partner_id=partner_id, tenant_id=tenant_id, data={
                "id": saved.id, "tenant_id": tenant_id, "payer": "tenant", "brand": saved.brand,
                "last4": saved.last4, "exp_month": saved.exp_month, "exp_year": saved.exp_year,
                "is_default": saved.is_default})
        log.info("collection.method_attached", partner_id=partner_id, tenant_id=tenant_id, default=first)
        return saved, True

    async def list_methods(self, partner_id: str, tenant_id: str) -> list[TenantMethodView]:
        await self._tenant(partner_id, tenant_id)
        partner = await self.resolver.for_partner(self.pool, partner_id)
        return await store.methods(self.pool, tenant_id, partner.account)

    async def make_default(self, partner_id: str, tenant_id: str, method_id: str) -> TenantMethodView:
        await self._tenant(partner_id, tenant_id)
        async with self.pool.acquire() as conn, conn.transaction():
            await _locked_method(conn, tenant_id, method_id)
            await store.set_default(conn, tenant_id, await store.method_account(conn, method_id), method_id)
            saved = await store.method(conn, tenant_id, method_id)
        assert saved is not None
        return saved

    async def delete(self, partner_id: str, tenant_id: str, method_id: str) -> None:
        await self._tenant(partner_id, tenant_id)
        async with self.pool.acquire() as conn, conn.transaction():
            current = await _locked_method(conn, tenant_id, method_id)
            account = await store.method_account(conn, method_id)
            await store.delete_method(conn, tenant_id, method_id)
            if current.is_default:
                await store.set_default(conn, tenant_id, account, None)
        try:  # after commit: a failed detach leaves an unused card at Stripe, never a charged one
            partner = await self.resolver.for_partner(self.pool, partner_id)
            if partner.account == account:
                await partner.provider.detach_method(method_id=method_id)
        except (PaymentUnavailable, Problem) as exc:
            log.warning("collection.detach_failed", tenant_id=tenant_id, method_id=method_id, error=str(exc))

    # ------------------------------------------------------------ invoices

    async def invoice(self, partner_id: str, invoice_id: str) -> Invoice:
        found = await invoices.get(self.pool, invoice_id)
        if found is None or found.partner_id != partner_id:
            raise not_found(f"invoice {invoice_id}")
        return found

    async def manual_payment(self, partner_id: str, invoice_id: str, body: ManualPayment
                             ) -> tuple[InvoicePaymentResult, bool]:
        """Mark (part of) an invoice paid by hand; idempotent by ``reference`` (the same
        reference answers the payment it recorded, 200)."""
        errors: list[FieldError] = []
        if body.amount_micros <= 0 or body.amount_micros % money.MICROS_PER_CENT:
            errors.append(FieldError("amount_micros", "amount_micros: a positive whole number of cents in micros"))
        if not REFERENCE.fullmatch(body.reference):
            errors.append(FieldError("reference", "reference: 1 to 200 printable characters"))
        if body.note is not None and len(body.note) > 500:
            errors.append(FieldError("note", "note: at most 500 characters"))
        if errors:
            raise Problem(422, errors[0].message, errors=errors)
        invoice = await self.invoice(partner_id, invoice_id)
        reference = f"manual:{body.reference}"
        paid = None
        async with self.pool.acquire() as conn, conn.transaction():
            await store.lock_invoice(conn, invoice_id)
            existing = await store.payment_by_reference(conn, partner_id, reference)
            if existing is not None:
                if existing.invoice_id != invoice_id or existing.amount_micros != body.amount_micros:
                    raise Problem(409, f"reference {body.reference} already recorded another payment",
                                  code="conflict", field="reference")
                payment, created = existing, False
            else:
                invoice = await invoices.get(conn, invoice_id) or invoice
                if invoice.status not in PAYABLE:
                    raise Problem(409, f"invoice {invoice_id} is {invoice.status.value}: only a sent, overdue or"
                                       " partially paid invoice takes a payment", code="invoice_not_payable")
                if body.amount_micros > invoice.outstanding_micros:
                    raise Problem(409, f"amount_micros is more than the {invoice.outstanding_micros} micros the"
                                       " invoice still owes", code="overpayment", field="amount_micros",
                                  extra={"outstanding_micros": invoice.outstanding_micros})
                payment = PaymentRecord(
                    payment_id=new_id("pay"), partner_id=partner_id, tenant_id=invoice.tenant_id,
                    invoice_id=invoice_id, reference=reference, source="manual", mode=None, charge_id=None,
                    amount_micros=body.amount_micros, fee_micros=0, currency=invoice.currency, note=body.note,
                    created_at=datetime.now(UTC))
                paid = await apply(conn, payment)
                created = True
            stored = await store.payment_by_reference(conn, partner_id, reference)
            after = await invoices.get(conn, invoice_id)
        if paid is not None:
            await self.signals.invoice_paid.send(paid)
        assert stored is not None and after is not None
        return InvoicePaymentResult(payment=PaymentView.of(stored), invoice_status=after.status.value,
                                    paid_micros=after.paid_micros, outstanding_micros=after.outstanding_micros,
                                    currency=after.currency), created

    async def payments(self, partner_id: str, invoice_id: str) -> list[PaymentView]:
        await self.invoice(partner_id, invoice_id)
        return [PaymentView.of(p) for p in await store.payments(self.pool, invoice_id)]
