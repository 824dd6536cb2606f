"""The pure rules of collection: the 3.99 % fee, refund allocation and its limit, the usage a
refund credits, the account a mode charges on."""

from __future__ import annotations

import pytest

from controlplane.collection.rules import (
    Refundable,
    RefundTooLarge,
    StripeMode,
    account_key,
    allocate_refund,
    charge_reference,
    fee_micros,
    usage_credit_micros,
)

USD = 1_000_000


def test_the_fee_is_3_99_percent_rounded_half_up_to_the_cent() -> None:
    assert fee_micros(StripeMode.CONNECT, 100 * USD) == 3_990_000
    assert fee_micros(StripeMode.PLATFORM, 156_310_000) == 6_240_000  # 6.236769 -> 6.24
    assert fee_micros(StripeMode.CONNECT, 12_530_000) == 500_000  # 0.499947 -> 0.50
    assert fee_micros(StripeMode.CONNECT, 10_000) == 0  # 0.0399 cent -> 0
    assert fee_micros(StripeMode.CUSTOM_KEYS, 100 * USD) == 0


def test_half_a_cent_rounds_up() -> None:
    amount = 1_253_133  # * 0.0399 = 50_000.0067 micros -> 0.05
    assert fee_micros(StripeMode.CONNECT, amount) == 50_000
    assert fee_micros(StripeMode.CONNECT, 125_000) == 0  # 4_987.5 micros -> 0.00 (under half a cent)
    assert fee_micros(StripeMode.CONNECT, 125_314) == 10_000  # 5_000.0286 micros: half a cent -> 0.01


def test_refunds_go_to_card_payments_first_newest_first_then_manual() -> None:
    paid = [Refundable("p1", "card", 50 * USD, 0), Refundable("m1", "manual", 30 * USD, 0),
            Refundable("p2", "card", 20 * USD, 5 * USD)]
    parts = allocate_refund(70 * USD, paid)
    assert [(a.payment_id, a.amount_micros) for a in parts] == [("p2", 15 * USD), ("p1", 50 * USD),
                                                                ("m1", 5 * USD)]


def test_a_refund_never_exceeds_what_is_left_to_refund() -> None:
    paid = [Refundable("p1", "card", 50 * USD, 40 * USD)]
    assert [a.amount_micros for a in allocate_refund(10 * USD, paid)] == [10 * USD]
    with pytest.raises(RefundTooLarge) as caught:
        allocate_refund(10 * USD + 10_000, paid)
    assert caught.value.refundable == 10 * USD
    with pytest.raises(RefundTooLarge):
        allocate_refund(1 * USD, [])
    with pytest.raises(ValueError):
        allocate_refund(0, paid)


LINES = [("base_fee", 99 * USD), ("extensions", 40 * USD), ("dids_local", 2_060_000),
         ("minutes_included", 0), ("minutes_local", 3 * USD), ("credit", -1 * USD)]
TOTAL = 156_310_000


def test_a_full_refund_credits_exactly_the_usage_lines() -> None:
    assert usage_credit_micros(TOTAL, TOTAL, LINES) == 3 * USD


def test_a_partial_refund_credits_the_usage_pro_rata_of_the_total() -> None:
    # 50 of 156.31 refunded: 3.00 * 50 / 156.31 = 0.95963... -> 0.96
    assert usage_credit_micros(50 * USD, TOTAL, LINES) == 960_000
    assert usage_credit_micros(1 * USD, TOTAL, LINES) == 20_000  # 0.01919 -> 0.02


def test_no_usage_no_credit() -> None:
    assert usage_credit_micros(10 * USD, 99 * USD, [("base_fee", 99 * USD)]) == 0


def test_each_mode_charges_on_its_own_account() -> None:
    assert account_key(StripeMode.PLATFORM) == "platform"
    assert account_key(StripeMode.CONNECT, connect_account_id="acct_1") == "connect:acct_1"
    one = account_key(StripeMode.CUSTOM_KEYS, secret_key="sk_test_aaaaaaaaaaaa")
    two = account_key(StripeMode.CUSTOM_KEYS, secret_key="sk_test_bbbbbbbbbbbb")
    assert one.startswith("custom:") and one != two and "aaaa" not in one


def test_a_charge_reference_names_the_invoice_and_the_attempt() -> None:
    assert charge_reference("inv_1", 3) == "invoice:inv_1:3"
