"""What each Stripe mode sends, decided by pure functions (docs/collection.md "Connect").

localstripe cannot emulate Connect (it refuses ``application_fee_amount`` and ignores the
``Stripe-Account`` header), so Connect's request is asserted here, where it is built; the
integration test shows the adapter really sends it (localstripe names the field it refuses)."""

from __future__ import annotations

import pytest
import stripe

from controlplane.collection.rules import StripeMode
from controlplane.collection.stripe_tenant import TenantStripe, client_options, intent_params, refund_params


def _intent(mode: StripeMode, amount: int = 156_310_000) -> dict[str, object]:
    return intent_params(mode, customer_id="cus_1", method_id="pm_1", amount_micros=amount, currency="USD",
                         description="Invoice INV-000001", idempotency_key="collection:p:invoice:inv_1:1")


def test_connect_charges_carry_the_3_99_percent_application_fee_in_cents() -> None:
    params = _intent(StripeMode.CONNECT)
    assert params["amount"] == 15631
    assert params["application_fee_amount"] == 624  # 3.99 % of 156.31 = 6.2368 -> 6.24
    assert params["off_session"] is True and params["confirm"] is True and params["currency"] == "usd"


@pytest.mark.parametrize("mode", [StripeMode.PLATFORM, StripeMode.CUSTOM_KEYS])
def test_platform_and_custom_keys_charges_carry_no_application_fee(mode: StripeMode) -> None:
    assert "application_fee_amount" not in _intent(mode)


def test_connect_acts_on_the_connected_account() -> None:
    assert client_options(StripeMode.CONNECT, "acct_123") == {"stripe_account": "acct_123"}
    assert client_options(StripeMode.PLATFORM, None) == {}
    assert client_options(StripeMode.CUSTOM_KEYS, None) == {}
    with pytest.raises(ValueError):
        client_options(StripeMode.CONNECT, None)


def test_the_connect_client_sends_the_stripe_account_header() -> None:
    provider = TenantStripe(StripeMode.CONNECT, "sk_test_platform", connect_account_id="acct_123")
    client = provider._client
    requestor = client._requestor  # the SDK keeps the per-client options here
    assert requestor._options.stripe_account == "acct_123"  # sent as the Stripe-Account header
    assert isinstance(client, stripe.StripeClient)


def test_connect_refunds_return_the_application_fee_pro_rata() -> None:
    assert refund_params(StripeMode.CONNECT, provider_charge_id="pi_1", amount_micros=50_000_000) == {
        "payment_intent": "pi_1", "amount": 5000, "refund_application_fee": True}
    assert refund_params(StripeMode.PLATFORM, provider_charge_id="pi_1", amount_micros=50_000_000) == {
        "payment_intent": "pi_1", "amount": 5000}


def test_amounts_that_are_not_whole_cents_are_refused_not_rounded() -> None:
    with pytest.raises(ValueError):
        _intent(StripeMode.PLATFORM, 1_234_567)
