"""The payment-provider port: what the platform asks of a card processor, and its errors.

Owned by the payments capability (``controlplane.payments.provider`` is where callers
import it from). It lives in the shared kernel because ``controlplane.plugins.Context``
carries a provider, and the plumbing layer may not import a capability. No SDK here:
``controlplane.payments.stripe_provider`` is the one adapter that knows Stripe.

Amounts are integer micro-units of the platform currency (``*_micros``); card data never
passes through: only the provider's payment method ids (``pm_...``).

The errors are problems (``controlplane.shared.problems.Problem``), so a route that lets
one through still answers a clear problem+json instead of a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from controlplane.shared.problems import Problem

__all__ = ["CardInfo", "ChargeResult", "NoPaymentMethod", "PaymentDeclined", "PaymentProvider",
           "PaymentUnavailable", "PaymentsDisabled", "RefundResult", "SetupIntentResult",
           "TenantPaymentProvider", "UnknownPaymentMethod"]


class PaymentDeclined(Problem):
    """The provider refused the payment for good (card declined, expired, ...): retrying the
    same request will not help. ``code`` is the provider's (``card_declined``,
    ``insufficient_funds``, ...), ``message`` its text for a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(402, message, code=code)
        self.message = message

    # Problem sets ``code`` as ``str | None``; a decline always has one.
    code: str


class PaymentsDisabled(Problem):
    """No provider is configured (``payments.stripe_secret_key`` unset)."""

    def __init__(self, detail: str = "payments are disabled on this platform: no payment provider is configured"
                 ) -> None:
        super().__init__(409, detail, code="payments_disabled")


class NoPaymentMethod(Problem):
    """The partner has no default payment method to charge."""

    def __init__(self, partner_id: str) -> None:
        super().__init__(409, f"partner {partner_id} has no default payment method: add a card first",
                         code="no_payment_method")
        self.partner_id = partner_id


class PaymentUnavailable(Problem):
    """The provider could not be reached or refused our credentials: the outcome is unknown
    or not the partner's fault. A charge left PENDING is retried with the same key."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, detail, code="payment_provider_unavailable")


class UnknownPaymentMethod(Problem):
    """The provider has no payment method with this id (a 422 naming the field)."""

    def __init__(self, method_id: str, field: str = "payment_method_id") -> None:
        super().__init__(422, f"{field}: the payment provider has no payment method {method_id}", field=field,
                         code="invalid")


@dataclass(frozen=True, slots=True)
class CardInfo:
    method_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True, slots=True)
class ChargeResult:
    provider_charge_id: str
    amount_micros: int


@dataclass(frozen=True, slots=True)
class RefundResult:
    provider_refund_id: str
    amount_micros: int


class PaymentProvider(Protocol):
    """A card processor. Every call that moves money takes an idempotency key: sent twice
    with the same key, the provider does it once (Stripe keeps keys 24 hours)."""

    async def create_customer(self, *, partner_id: str, email: str | None, name: str,
                              idempotency_key: str) -> str:
        """The provider's customer id for the partner."""
        ...

    async def attach_method(self, *, customer_id: str, method_id: str) -> CardInfo:
        """Attach a payment method the browser created (Stripe.js); raises PaymentDeclined
        when the card is refused on attach, UnknownPaymentMethod when there is no such id."""
        ...

    async def detach_method(self, *, method_id: str) -> None: ...

    async def charge(self, *, customer_id: str, method_id: str, amount_micros: int, currency: str,
                     description: str, idempotency_key: str) -> ChargeResult:
        """Charge off-session, confirmed at once; raises PaymentDeclined on a decline.
        ``amount_micros`` must be whole cents (``money.round_cents``)."""
        ...

    async def refund(self, *, provider_charge_id: str, amount_micros: int, idempotency_key: str) -> RefundResult:
        ...


# ---------------------------------------------------------------- tenants' cards (collection)
# Added for tenant billing (controlplane/collection, docs/collection.md); additive only: the
# partner-side ``PaymentProvider`` above is unchanged.


@dataclass(frozen=True, slots=True)
class SetupIntentResult:
    """A SetupIntent: the browser confirms it with Stripe.js (``client_secret``) to save a card."""

    setup_intent_id: str
    client_secret: str


class TenantPaymentProvider(PaymentProvider, Protocol):
    """The provider a partner's tenants pay through (one per partner's Stripe mode): the same
    calls, on the partner's account, plus what saving a card from the browser needs."""

    async def create_tenant_customer(self, *, tenant_id: str, email: str | None, name: str,
                                     idempotency_key: str) -> str:
        """The provider's customer id for the tenant."""
        ...

    async def create_setup_intent(self, *, customer_id: str, idempotency_key: str) -> SetupIntentResult:
        """A SetupIntent for an off-session card of the customer."""
        ...
