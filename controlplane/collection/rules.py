"""The pure rules of collection: fees, refund limits and what a refund credits (no I/O).

Money is integer micro-units; every amount that reaches Stripe is a whole number of cents,
rounded half up to the cent here, as ``money.round_cents`` does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from controlplane.shared.money import MICROS_PER_CENT

# Seed 003: "We attach an application_fee of 3.99% of each charge" (Connect); Platform mode
# settles "your earnings (minus our 3.99% fee)"; Custom Keys: "zero application fee".
FEE_BASIS_POINTS = 399
FEE_RATE = "0.0399"

CONNECT_ACCOUNT = re.compile(r"acct_[A-Za-z0-9]{1,64}")
SECRET_KEY = re.compile(r"sk_(live|test)_[A-Za-z0-9_]{8,247}")
PUBLISHABLE_KEY = re.compile(r"pk_(live|test)_[A-Za-z0-9_]{8,247}")
REFERENCE = re.compile(r"[ -~]{1,200}")  # printable ASCII: a cheque number, a bank transfer id


class StripeMode(StrEnum):
    PLATFORM = "platform"
    CONNECT = "connect"
    CUSTOM_KEYS = "custom_keys"


def fee_micros(mode: StripeMode | str, amount_micros: int) -> int:
    """The platform's fee on a card payment in this mode: 3.99 % rounded half up to a cent
    (platform and connect); nothing on custom keys."""
    if StripeMode(mode) is StripeMode.CUSTOM_KEYS:
        return 0
    return _round_fraction(amount_micros * FEE_BASIS_POINTS, 10_000)


def _round_fraction(numerator: int, denominator: int) -> int:
    """numerator / denominator micros rounded half up to a whole cent (exact integers)."""
    cent_den = denominator * MICROS_PER_CENT
    cents, rest = divmod(numerator, cent_den)
    if rest * 2 >= cent_den:
        cents += 1
    return cents * MICROS_PER_CENT


def account_key(mode: StripeMode, *, connect_account_id: str | None = None, secret_key: str | None = None) -> str:
    """Which Stripe account a mode charges on: customers and cards are kept per account, so a
    partner that switches modes (or keys) never charges a card saved at another account."""
    if mode is StripeMode.PLATFORM:
        return "platform"
    if mode is StripeMode.CONNECT:
        assert connect_account_id is not None
        return f"connect:{connect_account_id}"
    assert secret_key is not None
    return "custom:" + hashlib.sha256(secret_key.encode()).hexdigest()[:16]


def charge_reference(invoice_id: str, attempt: int) -> str:
    """The idempotency reference of one attempt to charge an invoice."""
    return f"invoice:{invoice_id}:{attempt}"


# ---------------------------------------------------------------- refunds


@dataclass(frozen=True, slots=True)
class Refundable:
    """One payment of an invoice and how much of it is still refundable."""

    payment_id: str
    source: str  # card | manual
    amount_micros: int
    refunded_micros: int  # by credit notes pending or issued

    @property
    def left_micros(self) -> int:
        return self.amount_micros - self.refunded_micros


@dataclass(frozen=True, slots=True)
class Allocation:
    payment_id: str
    source: str
    amount_micros: int


class RefundTooLarge(ValueError):
    def __init__(self, asked: int, refundable: int) -> None:
        super().__init__(f"a refund of {asked} micros exceeds the {refundable} micros still refundable")
        self.asked = asked
        self.refundable = refundable


def allocate_refund(amount_micros: int, payments: Sequence[Refundable]) -> list[Allocation]:
    """Spread a refund over an invoice's payments: card payments first (the money goes back to
    the card through the provider), newest first; then manual ones (the partner returns that
    money itself). Raises RefundTooLarge past what was paid less what was refunded."""
    if amount_micros <= 0:
        raise ValueError("a refund is positive")
    refundable = sum(max(0, p.left_micros) for p in payments)
    if amount_micros > refundable:
        raise RefundTooLarge(amount_micros, refundable)
    order = [p for p in reversed(payments) if p.source == "card"] + [p for p in reversed(payments)
                                                                     if p.source != "card"]
    left, out = amount_micros, []
    for p in order:
        take = min(left, max(0, p.left_micros))
        if take:
            out.append(Allocation(p.payment_id, p.source, take))
            left -= take
        if not left:
            break
    return out


def is_usage_line(kind: str) -> bool:
    """Usage lines: the minutes billed by class (controlplane.invoices LineKind minutes_*)."""
    return kind.startswith("minutes_") and kind != "minutes_included"


def usage_credit_micros(refund_micros: int, total_micros: int, line_amounts: Iterable[tuple[str, int]]) -> int:
    """The usage refunded by a refund, credited on the tenant's next invoice.

    A refund is spread over the whole invoice pro rata (tax included): the usage part of it
    is ``refund x usage / total``, where usage is the sum of the usage lines (before tax),
    rounded half up to the cent. A full refund credits exactly the usage lines' sum.
    """
    usage = sum(amount for kind, amount in line_amounts if is_usage_line(kind) and amount > 0)
    if usage <= 0 or total_micros <= 0 or refund_micros <= 0:
        return 0
    if refund_micros >= total_micros:
        return usage
    return _round_fraction(refund_micros * usage, total_micros)
