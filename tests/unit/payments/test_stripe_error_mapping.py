"""What each Stripe error means to the platform (stripe_provider.provider_error)."""

from __future__ import annotations

import stripe

from controlplane.payments.provider import PaymentDeclined, PaymentUnavailable, UnknownPaymentMethod
from controlplane.payments.stripe_provider import provider_error


def test_a_card_error_is_a_decline_with_stripes_code_and_message() -> None:
    mapped = provider_error(stripe.CardError("Your card has insufficient funds.", None, "card_declined",
                                             http_status=402, json_body={"error": {"decline_code": "x"}}))
    assert isinstance(mapped, PaymentDeclined)
    assert (mapped.code, mapped.message, mapped.status) == ("card_declined", "Your card has insufficient funds.", 402)


def test_a_card_error_without_a_code_is_still_a_decline() -> None:
    mapped = provider_error(stripe.CardError("Declined.", None, None, http_status=402))
    assert isinstance(mapped, PaymentDeclined) and mapped.code == "card_declined"


def test_an_invalid_request_is_a_final_decline_with_its_code() -> None:
    mapped = provider_error(stripe.InvalidRequestError("Amount must be at least $0.50 usd", "amount",
                                                       code="amount_too_small", http_status=400))
    assert isinstance(mapped, PaymentDeclined) and mapped.code == "amount_too_small"


def test_a_missing_payment_method_on_attach_is_a_422_naming_the_field() -> None:
    for exc in (stripe.InvalidRequestError("No such PaymentMethod", "id", code="resource_missing", http_status=404),
                stripe.InvalidRequestError("Not Found", None, http_status=404)):  # localstripe: no code
        mapped = provider_error(exc, method_id="pm_x1")
        assert isinstance(mapped, UnknownPaymentMethod)
        assert (mapped.status, mapped.field) == (422, "payment_method_id")
    charged = provider_error(stripe.InvalidRequestError("Not Found", None, http_status=404))
    assert isinstance(charged, PaymentDeclined) and charged.code == "resource_missing"


def test_unknown_outcomes_and_our_own_credentials_are_unavailable_not_declines() -> None:
    for exc in (stripe.APIConnectionError("connection reset"), stripe.APIError("boom", http_status=500),
                stripe.RateLimitError("slow down", http_status=429),
                stripe.AuthenticationError("Invalid API Key", http_status=401),
                stripe.PermissionError("nope", http_status=403),
                stripe.IdempotencyError("Keys for idempotent requests can only be used with the same parameters",
                                        http_status=400),
                stripe.InvalidRequestError("Too many requests", None, code="rate_limit", http_status=429)):
        mapped = provider_error(exc)
        assert isinstance(mapped, PaymentUnavailable), exc
        assert (mapped.status, mapped.code) == (503, "payment_provider_unavailable")
