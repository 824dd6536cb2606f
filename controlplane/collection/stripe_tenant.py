"""The Stripe adapter tenants pay through: one per partner's Stripe mode (docs/collection.md).

- platform: the platform's key; charges land on our account;
- connect: the platform's key acting on the partner's connected account (the ``Stripe-Account``
  header, ``stripe_account`` here), direct charges with ``application_fee_amount`` = 3.99 %;
- custom_keys: the partner's own secret key; charges land on its account, no fee.

The request parameters are built by the pure functions below, so what Connect sends (which
localstripe cannot emulate: it refuses ``application_fee_amount`` and ignores
``Stripe-Account``) is tested where it is decided. Blocking SDK calls run in worker threads,
as in ``controlplane.payments.stripe_provider`` (whose adapter this extends).
"""

from __future__ import annotations

from typing import Any

from controlplane.collection.rules import StripeMode, fee_micros
from controlplane.payments.stripe_provider import StripeProvider, card_info
from controlplane.payments.stripe_provider import intent_params as payment_intent_params
from controlplane.payments.stripe_provider import refund_params as payment_refund_params
from controlplane.shared.money import to_cents
from controlplane.shared.payments import CardInfo, PaymentUnavailable, SetupIntentResult


def client_options(mode: StripeMode, connect_account_id: str | None) -> dict[str, Any]:
    """StripeClient keyword arguments of a mode: Connect acts on the connected account."""
    if mode is StripeMode.CONNECT:
        if not connect_account_id:
            raise ValueError("connect mode needs the connected account id")
        return {"stripe_account": connect_account_id}
    return {}


def intent_params(mode: StripeMode, *, customer_id: str, method_id: str, amount_micros: int, currency: str,
                  description: str, idempotency_key: str) -> dict[str, Any]:
    """The PaymentIntent of a tenant charge: off-session, confirmed at once, card only; in
    Connect mode a direct charge carrying the platform's application fee (in cents)."""
    params = payment_intent_params(customer_id=customer_id, method_id=method_id, amount_micros=amount_micros,
                                   currency=currency, description=description, idempotency_key=idempotency_key)
    if mode is StripeMode.CONNECT:
        params["application_fee_amount"] = to_cents(fee_micros(mode, amount_micros))
    return params


def refund_params(mode: StripeMode, *, provider_charge_id: str, amount_micros: int) -> dict[str, Any]:
    """A refund of (part of) a PaymentIntent; in Connect mode the application fee is refunded
    pro rata with it (Stripe keeps it otherwise), as platform mode's settlement does."""
    params = payment_refund_params(provider_charge_id=provider_charge_id, amount_micros=amount_micros)
    if mode is StripeMode.CONNECT:
        params["refund_application_fee"] = True
    return params


class TenantStripe(StripeProvider):
    """``TenantPaymentProvider`` on a ``stripe.StripeClient`` for one partner's mode."""

    _error_event = "collection.provider_error"

    def __init__(self, mode: StripeMode, secret_key: str, *, api_base: str | None = None,
                 connect_account_id: str | None = None, timeout: float = 30.0, max_network_retries: int = 2) -> None:
        self.mode = mode
        self.secret_key = secret_key
        self.connect_account_id = connect_account_id
        super().__init__(secret_key, api_base=api_base, timeout=timeout, max_network_retries=max_network_retries,
                         client_options=client_options(mode, connect_account_id))

    def _log_fields(self) -> dict[str, Any]:
        return {"mode": self.mode.value}

    def _intent_params(self, *, customer_id: str, method_id: str, amount_micros: int, currency: str,
                       description: str, idempotency_key: str) -> dict[str, Any]:
        return intent_params(self.mode, customer_id=customer_id, method_id=method_id, amount_micros=amount_micros,
                             currency=currency, description=description, idempotency_key=idempotency_key)

    def _refund_params(self, *, provider_charge_id: str, amount_micros: int) -> dict[str, Any]:
        return refund_params(self.mode, provider_charge_id=provider_charge_id, amount_micros=amount_micros)

    async def create_tenant_customer(self, *, tenant_id: str, email: str | None, name: str,
                                     idempotency_key: str) -> str:
        return await self._customer({"tenant_id": tenant_id}, email, name, idempotency_key)

    async def create_setup_intent(self, *, customer_id: str, idempotency_key: str) -> SetupIntentResult:
        params: dict[str, Any] = {"customer": customer_id, "usage": "off_session", "payment_method_types": ["card"]}
        intent = await self._call(lambda: self._client.v1.setup_intents.create(
            params=params, options={"idempotency_key": idempotency_key}))  # type: ignore[arg-type]
        return SetupIntentResult(setup_intent_id=str(intent.id), client_secret=str(intent.client_secret))

    async def attach_method(self, *, customer_id: str, method_id: str) -> CardInfo:
        """Attach the card (a confirmed SetupIntent may have attached it already: then it is read)."""
        method = await self._call(lambda: self._client.v1.payment_methods.retrieve(method_id), method_id=method_id)
        if getattr(method, "customer", None) != customer_id:
            method = await self._call(lambda: self._client.v1.payment_methods.attach(
                method_id, params={"customer": customer_id}), method_id=method_id)
        return card_info(method, method_id)

__all__ = ["PaymentUnavailable", "TenantStripe", "client_options", "intent_params", "refund_params"]
