"""The Stripe adapter of ``PaymentProvider``, on the official SDK.

The SDK's blocking client runs in worker threads (``asyncio.to_thread``), so a slow Stripe
never stalls the event loop. Its async methods work too (checked against localstripe with
``stripe.AIOHTTPClient``), but they bind an aiohttp session to the loop that first used it
and need closing; a thread per call has no lifecycle to get wrong and charges are rare.

Charges are PaymentIntents created off-session and confirmed at once, card only. The
description goes into the metadata (with the idempotency key) rather than Stripe's
``description``: localstripe refuses that field, and tests must run the code that runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import stripe
import structlog

from controlplane.config import PaymentsConfig
from controlplane.payments.provider import (
    CardInfo,
    ChargeResult,
    PaymentDeclined,
    PaymentUnavailable,
    RefundResult,
    UnknownPaymentMethod,
)
from controlplane.shared.money import MICROS_PER_CENT, to_cents

log = structlog.get_logger(__name__)
R = TypeVar("R")


def provider_error(exc: stripe.StripeError, *, method_id: str | None = None) -> Exception:
    """What a Stripe error means to the platform (pure: unit-tested on constructed errors).

    A refusal that the same request would meet again (a card error, an invalid request) is a
    ``PaymentDeclined`` with Stripe's code; not knowing the outcome (network, 5xx, rate
    limit) or our own credentials refused is ``PaymentUnavailable``: a charge stays PENDING
    and is retried with the same idempotency key.
    """
    code = exc.code or ""
    message = exc.user_message or _message(exc)
    if isinstance(exc, stripe.CardError):
        return PaymentDeclined(code or "card_declined", message)
    if isinstance(exc, stripe.IdempotencyError):
        return PaymentUnavailable(f"the payment provider refused the idempotency key: {message}")
    if isinstance(exc, stripe.InvalidRequestError):
        if method_id is not None and (code == "resource_missing" or exc.http_status == 404):
            return UnknownPaymentMethod(method_id)
        if exc.http_status == 429:
            return PaymentUnavailable("the payment provider is rate limiting us; try again")
        return PaymentDeclined(code or ("resource_missing" if exc.http_status == 404 else "invalid_request"), message)
    if isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
        return PaymentUnavailable("the payment provider refused the platform's credentials")
    return PaymentUnavailable(f"the payment provider did not answer usably: {type(exc).__name__}")


def intent_params(*, customer_id: str, method_id: str, amount_micros: int, currency: str, description: str,
                  idempotency_key: str) -> dict[str, Any]:
    """The PaymentIntent of a charge: off-session, confirmed at once, card only."""
    return {
        "amount": to_cents(amount_micros), "currency": currency.lower(), "customer": customer_id,
        "payment_method": method_id, "payment_method_types": ["card"], "off_session": True, "confirm": True,
        "metadata": {"description": description[:500], "idempotency_key": idempotency_key},
    }


def refund_params(*, provider_charge_id: str, amount_micros: int) -> dict[str, Any]:
    """A refund of (part of) a PaymentIntent."""
    return {"payment_intent": provider_charge_id, "amount": to_cents(amount_micros)}


def _message(exc: stripe.StripeError) -> str:
    text = str(getattr(exc, "_message", None) or exc)
    return text.split("\n", 1)[0][:300] or type(exc).__name__


class StripeProvider:
    """``PaymentProvider`` on a ``stripe.StripeClient`` (api key and base address from config).

    ``controlplane.collection.stripe_tenant`` extends it for tenants' charges (the partner's
    Stripe mode): it overrides the request parameters, the log event and its fields."""

    _error_event = "payments.provider_error"

    def __init__(self, secret_key: str, *, api_base: str | None = None, timeout: float = 30.0,
                 max_network_retries: int = 2, client_options: dict[str, Any] | None = None) -> None:
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            http_client=stripe.RequestsClient(timeout=timeout),
            max_network_retries=max_network_retries,
            **(client_options or {}),
        )

    def _log_fields(self) -> dict[str, Any]:
        return {}

    def _intent_params(self, *, customer_id: str, method_id: str, amount_micros: int, currency: str,
                       description: str, idempotency_key: str) -> dict[str, Any]:
        return intent_params(customer_id=customer_id, method_id=method_id, amount_micros=amount_micros,
                             currency=currency, description=description, idempotency_key=idempotency_key)

    def _refund_params(self, *, provider_charge_id: str, amount_micros: int) -> dict[str, Any]:
        return refund_params(provider_charge_id=provider_charge_id, amount_micros=amount_micros)

    async def _call(self, fn: Callable[[], R], *, method_id: str | None = None) -> R:
        try:
            return await asyncio.to_thread(fn)
        except stripe.StripeError as exc:
            mapped = provider_error(exc, method_id=method_id)
            log.info(self._error_event, **self._log_fields(), error=type(exc).__name__, code=exc.code,
                     http_status=exc.http_status, mapped=type(mapped).__name__)
            raise mapped from None

    async def create_customer(self, *, partner_id: str, email: str | None, name: str,
                              idempotency_key: str) -> str:
        return await self._customer({"partner_id": partner_id}, email, name, idempotency_key)

    async def _customer(self, metadata: dict[str, str], email: str | None, name: str, key: str) -> str:
        params: dict[str, Any] = {"name": name, "metadata": metadata}
        if email:
            params["email"] = email
        customer = await self._call(lambda: self._client.v1.customers.create(
            params=params, options={"idempotency_key": key}))  # type: ignore[arg-type]
        return str(customer.id)

    async def attach_method(self, *, customer_id: str, method_id: str) -> CardInfo:
        method = await self._call(lambda: self._client.v1.payment_methods.attach(
            method_id, params={"customer": customer_id}), method_id=method_id)
        return card_info(method, method_id)

    async def detach_method(self, *, method_id: str) -> None:
        await self._call(lambda: self._client.v1.payment_methods.detach(method_id), method_id=method_id)

    async def charge(self, *, customer_id: str, method_id: str, amount_micros: int, currency: str,
                     description: str, idempotency_key: str) -> ChargeResult:
        params = self._intent_params(customer_id=customer_id, method_id=method_id, amount_micros=amount_micros,
                                     currency=currency, description=description, idempotency_key=idempotency_key)
        intent = await self._call(lambda: self._client.v1.payment_intents.create(
            params=params, options={"idempotency_key": idempotency_key}))  # type: ignore[arg-type]
        if intent.status != "succeeded":
            # Off-session a card that wants 3-D Secure cannot be confirmed: a decline for us.
            raise PaymentDeclined("authentication_required" if intent.status == "requires_action"
                                  else f"payment_{intent.status}",
                                  f"the payment is {intent.status}, not succeeded")
        return ChargeResult(provider_charge_id=str(intent.id), amount_micros=int(intent.amount) * MICROS_PER_CENT)

    async def refund(self, *, provider_charge_id: str, amount_micros: int, idempotency_key: str) -> RefundResult:
        params = self._refund_params(provider_charge_id=provider_charge_id, amount_micros=amount_micros)
        refund = await self._call(lambda: self._client.v1.refunds.create(
            params=params, options={"idempotency_key": idempotency_key}))  # type: ignore[arg-type]
        return RefundResult(provider_refund_id=str(refund.id), amount_micros=int(refund.amount) * MICROS_PER_CENT)


def card_info(method: stripe.PaymentMethod, method_id: str) -> CardInfo:
    """The card a PaymentMethod is; only cards are taken (ACH: not yet)."""
    card = method.card
    if method.type != "card" or card is None:
        raise UnknownPaymentMethod(method_id)
    return CardInfo(method_id=str(method.id), brand=str(card.brand), last4=str(card.last4),
                    exp_month=int(card.exp_month), exp_year=int(card.exp_year))


def provider_from_config(config: PaymentsConfig) -> StripeProvider | None:
    """The platform's provider from ``payments.*``; None (payments disabled) without a key."""
    if config.stripe_secret_key is None:
        return None
    return StripeProvider(config.stripe_secret_key, api_base=config.stripe_api_base, timeout=config.timeout)
