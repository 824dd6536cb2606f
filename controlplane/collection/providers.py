"""A provider per partner, built from its Stripe mode (docs/collection.md).

    resolver = Resolver.from_config(config)          # once per daemon
    partner = await resolver.for_partner(conn, partner_id)
    partner.provider.charge(...)                      # on the partner's account

The partner's secret key (custom keys) is opened here, and only here, from the sealed column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.collection import store
from controlplane.collection.models import ModeSettings
from controlplane.collection.rules import StripeMode, account_key
from controlplane.collection.stripe_tenant import TenantStripe
from controlplane.config import Config, PaymentsConfig
from controlplane.db.connection import Executor
from controlplane.secret_box import SecretBox, secret_key
from controlplane.shared.payments import PaymentsDisabled, TenantPaymentProvider

# HKDF ``info`` of the partners' Stripe keys: a ciphertext of another use never opens here.
STRIPE_KEYS = b"controlplane collection partner stripe keys v1"


@dataclass(frozen=True)
class PartnerProvider:
    """The provider a partner's tenants pay through, and which account it charges on."""

    mode: StripeMode
    account: str  # "platform" | "connect:acct_..." | "custom:<key fingerprint>"
    provider: TenantPaymentProvider
    stripe_account: str | None  # Connect: Stripe.js needs it (stripeAccount)
    publishable_key: str | None  # custom keys: the partner's pk_... for Stripe.js


@dataclass
class Resolver:
    payments: PaymentsConfig
    box: SecretBox
    # Built providers by (mode, account): a StripeClient per partner account, not per call.
    _cache: dict[tuple[str, str], TenantPaymentProvider] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> Resolver:
        return cls(config.payments, sealing_box(config))

    def seal(self, partner_id: str, secret: str) -> bytes:
        return self.box.seal_bytes(partner_id, secret.encode())

    def open(self, settings: ModeSettings) -> str:
        assert settings.secret_key_sealed is not None
        return self.box.open_bytes(settings.partner_id, settings.secret_key_sealed).decode()

    async def for_partner(self, conn: Executor, partner_id: str) -> PartnerProvider:
        """Raises PaymentsDisabled when the mode needs the platform's key and none is set."""
        return self.build(await store.mode(conn, partner_id))

    def build(self, settings: ModeSettings) -> PartnerProvider:
        mode = settings.mode
        if mode is StripeMode.CUSTOM_KEYS:
            key = self.open(settings)
            account = account_key(mode, secret_key=key)
        else:
            if self.payments.stripe_secret_key is None:
                raise PaymentsDisabled("tenant payments in platform and connect mode need the platform's Stripe key"
                                       " (payments.stripe_secret_key)")
            key = self.payments.stripe_secret_key
            account = account_key(mode, connect_account_id=settings.connect_account_id)
        provider = self._cache.get((mode.value, account))
        if provider is None:
            provider = TenantStripe(mode, key, api_base=self.payments.stripe_api_base,
                                    connect_account_id=settings.connect_account_id, timeout=self.payments.timeout)
            self._cache[(mode.value, account)] = provider
        return PartnerProvider(mode=mode, account=account, provider=provider,
                               stripe_account=settings.connect_account_id if mode is StripeMode.CONNECT else None,
                               publishable_key=settings.publishable_key)


def sealing_box(config: Config) -> SecretBox:
    return SecretBox(secret_key(config), info=STRIPE_KEYS)
