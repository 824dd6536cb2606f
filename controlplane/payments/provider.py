"""The payment-provider interface: records, errors and the ``PaymentProvider`` Protocol.

Defined in ``controlplane.shared.payments`` (the daemon's ``Context`` carries a provider and
may not import a capability); this is the name every caller imports it by.
"""

from __future__ import annotations

from controlplane.shared.payments import (
    CardInfo,
    ChargeResult,
    NoPaymentMethod,
    PaymentDeclined,
    PaymentProvider,
    PaymentsDisabled,
    PaymentUnavailable,
    RefundResult,
    UnknownPaymentMethod,
)

__all__ = ["CardInfo", "ChargeResult", "NoPaymentMethod", "PaymentDeclined", "PaymentProvider",
           "PaymentUnavailable", "PaymentsDisabled", "RefundResult", "UnknownPaymentMethod"]
