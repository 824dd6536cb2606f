"""charge_partner against localstripe and PostgreSQL: once per reference, whatever happens."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import pytest
import stripe
from localstripe_support import CARD_DECLINED, CARD_DECLINED_ON_CHARGE, CARD_OK, LocalStripe

from controlplane.payments import store
from controlplane.payments.charges import ChargeStatus, charge_partner, idempotency_key
from controlplane.payments.provider import (
    ChargeResult,
    NoPaymentMethod,
    PaymentDeclined,
    PaymentProvider,
    PaymentsDisabled,
    UnknownPaymentMethod,
)
from controlplane.payments.services import PaymentMethods
from controlplane.payments.stripe_provider import StripeProvider
from controlplane.signals import Signals


@pytest.fixture(scope="module")
def provider(localstripe: LocalStripe) -> StripeProvider:
    return localstripe.provider()


@pytest.fixture(scope="module")
def methods(pool: asyncpg.Pool, provider: StripeProvider) -> PaymentMethods:
    signals = Signals()
    signals.freeze()
    return PaymentMethods(pool, provider, signals)


CardFactory = Callable[..., Awaitable[tuple[str, str]]]
PartnerFactory = Callable[[], Awaitable[str]]


@pytest.fixture(scope="module")
def partner_with_card(make_partner: PartnerFactory, methods: PaymentMethods, localstripe: LocalStripe) -> CardFactory:
    async def make(number: str = CARD_OK) -> tuple[str, str]:
        partner_id = await make_partner()
        method_id = localstripe.card(number)
        await methods.attach(partner_id, method_id)
        return partner_id, method_id

    return make


async def test_a_charge_with_4242_succeeds_once_however_often_it_is_asked(
        pool: asyncpg.Pool, provider: StripeProvider, partner_with_card: CardFactory, localstripe: LocalStripe) -> None:
    partner_id, method_id = await partner_with_card()
    first = await charge_partner(pool, provider, partner_id=partner_id, amount_micros=12_340_000,
                                 reference="topup:abc", description="Wallet top-up")
    again = await charge_partner(pool, provider, partner_id=partner_id, amount_micros=12_340_000,
                                 reference="topup:abc", description="Wallet top-up")
    assert first.status is ChargeStatus.SUCCEEDED and first.amount_micros == 12_340_000
    assert again == first
    intents = localstripe.intents_for(idempotency_key(partner_id, "topup:abc"))
    assert [(pi.id, pi.amount, pi.currency, pi.status, pi.payment_method) for pi in intents] == [
        (first.provider_charge_id, 1234, "usd", "succeeded", method_id)]


async def test_concurrent_callers_of_one_reference_make_one_charge(
        pool: asyncpg.Pool, provider: StripeProvider, partner_with_card: CardFactory, localstripe: LocalStripe) -> None:
    partner_id, _ = await partner_with_card()
    charges = await asyncio.gather(*(
        charge_partner(pool, provider, partner_id=partner_id, amount_micros=5_000_000, reference="fee:2026-05",
                       description="Platform fee") for _ in range(4)))
    assert len({c.charge_id for c in charges}) == 1
    assert len(localstripe.intents_for(idempotency_key(partner_id, "fee:2026-05"))) == 1


@dataclass
class DiesBeforeTheCall:
    """A process killed after the PENDING row committed, before the provider heard of it."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(name)

    async def charge(self, **_: object) -> ChargeResult:
        raise asyncio.CancelledError()


async def test_a_pending_charge_left_by_a_crash_is_completed_with_one_charge(
        pool: asyncpg.Pool, provider: StripeProvider, partner_with_card: CardFactory, localstripe: LocalStripe) -> None:
    partner_id, _ = await partner_with_card()
    dying: PaymentProvider = DiesBeforeTheCall()  # type: ignore[assignment]
    with pytest.raises(asyncio.CancelledError):
        await charge_partner(pool, dying, partner_id=partner_id, amount_micros=20_000_000,
                             reference="recharge:x:2026-05-04T14", description="Auto-recharge")
    row = await store.charge_row(pool, partner_id, "recharge:x:2026-05-04T14")
    assert row is not None and row.charge.status is ChargeStatus.PENDING
    assert localstripe.intents_for(idempotency_key(partner_id, "recharge:x:2026-05-04T14")) == []

    done = await charge_partner(pool, provider, partner_id=partner_id, amount_micros=20_000_000,
                                reference="recharge:x:2026-05-04T14", description="Auto-recharge")
    again = await charge_partner(pool, provider, partner_id=partner_id, amount_micros=20_000_000,
                                 reference="recharge:x:2026-05-04T14", description="Auto-recharge")
    assert done.charge_id == row.charge.charge_id == again.charge_id
    assert done.status is ChargeStatus.SUCCEEDED
    assert [pi.id for pi in localstripe.intents_for(idempotency_key(partner_id, "recharge:x:2026-05-04T14"))] == [
        done.provider_charge_id]


async def test_a_declined_charge_is_stored_and_not_retried_on_the_same_card(
        pool: asyncpg.Pool, provider: StripeProvider, methods: PaymentMethods, partner_with_card: CardFactory,
        localstripe: LocalStripe) -> None:
    partner_id, _ = await partner_with_card(CARD_DECLINED_ON_CHARGE)
    ref = "recharge:y:2026-05-04T15"
    with pytest.raises(PaymentDeclined) as refused:
        await charge_partner(pool, provider, partner_id=partner_id, amount_micros=10_000_000, reference=ref,
                             description="Auto-recharge")
    assert refused.value.code == "card_declined" and refused.value.status == 402
    row = await store.charge_row(pool, partner_id, ref)
    assert row is not None and row.charge.status is ChargeStatus.DECLINED and row.decline_code == "card_declined"
    with pytest.raises(PaymentDeclined):  # the same card again: the stored decline, Stripe not asked
        await charge_partner(pool, provider, partner_id=partner_id, amount_micros=10_000_000, reference=ref,
                             description="Auto-recharge")
    assert len(localstripe.intents_for(idempotency_key(partner_id, ref))) == 1

    good = localstripe.card(CARD_OK)  # a new card made default: a new attempt, a new key
    await methods.attach(partner_id, good)
    await methods.make_default(partner_id, good)
    charge = await charge_partner(pool, provider, partner_id=partner_id, amount_micros=10_000_000, reference=ref,
                                  description="Auto-recharge")
    assert charge.status is ChargeStatus.SUCCEEDED
    assert [pi.status for pi in localstripe.intents_for(idempotency_key(partner_id, ref, 2))] == ["succeeded"]


async def test_the_declining_test_card_is_refused_on_attach_and_never_saved(
        pool: asyncpg.Pool, methods: PaymentMethods, make_partner: PartnerFactory, localstripe: LocalStripe) -> None:
    partner_id = await make_partner()
    with pytest.raises(PaymentDeclined) as refused:
        await methods.attach(partner_id, localstripe.card(CARD_DECLINED))
    assert refused.value.code == "card_declined"
    assert await store.methods(pool, partner_id) == []
    assert await store.default_method(pool, partner_id) is None


async def test_an_unknown_payment_method_is_a_422_naming_the_field(
        methods: PaymentMethods, make_partner: PartnerFactory) -> None:
    partner_id = await make_partner()
    with pytest.raises(UnknownPaymentMethod) as unknown:
        await methods.attach(partner_id, "pm_NoSuchMethod0000")
    assert (unknown.value.status, unknown.value.field) == (422, "payment_method_id")


async def test_no_provider_or_no_card_refuses_clearly(pool: asyncpg.Pool, provider: StripeProvider,
                                                     make_partner: PartnerFactory) -> None:
    partner_id = await make_partner()
    with pytest.raises(PaymentsDisabled) as disabled:
        await charge_partner(pool, None, partner_id=partner_id, amount_micros=10_000, reference="r", description="d")
    assert (disabled.value.status, disabled.value.code) == (409, "payments_disabled")
    with pytest.raises(NoPaymentMethod) as none:
        await charge_partner(pool, provider, partner_id=partner_id, amount_micros=10_000, reference="r",
                             description="d")
    assert (none.value.status, none.value.code) == (409, "no_payment_method")
    assert await store.charge_row(pool, partner_id, "r") is None


async def test_amounts_that_are_not_whole_positive_cents_are_refused_before_anything(
        pool: asyncpg.Pool, provider: StripeProvider, partner_with_card: CardFactory, localstripe: LocalStripe) -> None:
    partner_id, _ = await partner_with_card()
    for amount in (1_234_567, 0, -10_000):
        with pytest.raises(ValueError):
            await charge_partner(pool, provider, partner_id=partner_id, amount_micros=amount, reference="bad",
                                 description="d")
    assert await store.charge_row(pool, partner_id, "bad") is None


async def test_a_refund_goes_back_to_the_charge(
        pool: asyncpg.Pool, provider: StripeProvider, partner_with_card: CardFactory, localstripe: LocalStripe) -> None:
    partner_id, _ = await partner_with_card()
    charge = await charge_partner(pool, provider, partner_id=partner_id, amount_micros=3_000_000,
                                  reference="topup:refund-me", description="Wallet top-up")
    assert charge.provider_charge_id is not None
    refund = await provider.refund(provider_charge_id=charge.provider_charge_id, amount_micros=1_000_000,
                                   idempotency_key=f"{partner_id}:refund:1")
    assert refund.amount_micros == 1_000_000 and refund.provider_refund_id.startswith("re_")


@dataclass
class DiesAfterTheCall:
    """A process killed once Stripe charged, before the row said so."""

    real: StripeProvider

    def __getattr__(self, name: str) -> object:
        raise AssertionError(name)

    async def charge(self, **kwargs: object) -> ChargeResult:
        await self.real.charge(**kwargs)  # type: ignore[arg-type]
        raise asyncio.CancelledError()


async def test_a_charge_that_died_after_stripe_charged_is_not_charged_again(
        pool: asyncpg.Pool, provider: StripeProvider, partner_with_card: CardFactory,
        localstripe: LocalStripe) -> None:
    partner_id, _ = await partner_with_card()
    ref = "fee:2026-06"
    dying: PaymentProvider = DiesAfterTheCall(provider)  # type: ignore[assignment]
    with pytest.raises(asyncio.CancelledError):
        await charge_partner(pool, dying, partner_id=partner_id, amount_micros=49_000_000, reference=ref,
                             description="Platform fee")
    row = await store.charge_row(pool, partner_id, ref)
    assert row is not None and row.charge.status is ChargeStatus.PENDING
    [made] = localstripe.intents_for(idempotency_key(partner_id, ref))  # Stripe charged once already

    done = await charge_partner(pool, provider, partner_id=partner_id, amount_micros=49_000_000, reference=ref,
                                description="Platform fee")
    assert (done.status, done.provider_charge_id) == (ChargeStatus.SUCCEEDED, made.id)
    assert [pi.id for pi in localstripe.intents_for(idempotency_key(partner_id, ref))] == [made.id]


def test_the_fake_stripe_keeps_stripes_idempotency_rules(localstripe: LocalStripe) -> None:
    client = localstripe.client()
    first = client.v1.customers.create(params={"name": "A"}, options={"idempotency_key": "same-key"})
    again = client.v1.customers.create(params={"name": "A"}, options={"idempotency_key": "same-key"})
    other = client.v1.customers.create(params={"name": "A"}, options={"idempotency_key": "other-key"})
    assert first.id == again.id != other.id
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(params={"name": "B"}, options={"idempotency_key": "same-key"})
