from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdr_ingest.classify import CallClass, Direction
from cdr_ingest.pricing import BillingProfile, PriceNote, price_call, retail_rate
from cdr_ingest.rates import Rate, RateDeck, Rounding
from cdr_ingest.tiers import Tier

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2025, 1, 1, tzinfo=UTC)
C, D = CallClass, Direction

PAYG = BillingProfile("payg", per_minute=25_000)  # Appendix A: retail $0.025/min


def call(cls: CallClass, direction: Direction, seconds: int, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = dict(
        call_class=cls, direction=direction, answered_s=seconds, start=NOW, tier=Tier.STARTER, profile=PAYG
    )
    args.update(kw)
    return price_call(**args)  # type: ignore[arg-type]


def test_local_outbound_both_sides() -> None:
    p = call(C.LOCAL, D.OUTBOUND, 61)
    assert p.wholesale is not None and p.retail is not None
    assert p.wholesale.rate_id == "tier:starter:local:outbound"
    assert (p.wholesale.billable_seconds, p.wholesale.amount) == (66, 22_000)  # $0.020 * 66/60
    assert p.retail.rate_id == "profile:payg:local:outbound"
    assert (p.retail.billable_seconds, p.retail.amount) == (66, 27_500)  # $0.025 * 66/60
    assert p.margin == 5_500
    assert p.notes == ()


def test_toll_free_inbound_uses_toll_free_wholesale() -> None:
    p = call(C.TOLL_FREE, D.INBOUND, 120)
    assert p.wholesale is not None and p.wholesale.amount == 44_000  # $0.022 * 2
    assert p.retail is not None and p.retail.amount == 50_000  # single profile rate, any call type


def test_per_class_retail_rates() -> None:
    prof = BillingProfile("split", per_minute=25_000, local_per_minute=20_000, toll_free_per_minute=60_000)
    assert call(C.LOCAL, D.OUTBOUND, 60, profile=prof).retail.amount == 20_000  # type: ignore[union-attr]
    assert call(C.TOLL_FREE, D.INBOUND, 60, profile=prof).retail.amount == 60_000  # type: ignore[union-attr]


def test_inbound_not_charged_when_profile_says_so() -> None:
    prof = BillingProfile("no-in", per_minute=25_000, connect_fee=10_000, charge_inbound=False)
    p = call(C.LOCAL, D.INBOUND, 60, profile=prof)
    assert p.retail is not None and p.retail.amount == 0
    assert p.wholesale is not None and p.wholesale.amount == 20_000  # the partner still pays us
    assert p.margin == -20_000


@pytest.mark.parametrize(
    ("cls", "direction", "note"),
    [
        (C.INTERNAL, D.INTERNAL, PriceNote.FREE_INTERNAL),
        (C.INTERNAL, D.OUTBOUND, PriceNote.FREE_INTERNAL),
        (C.LOCAL, D.INTERNAL, PriceNote.FREE_INTERNAL),
        (C.EMERGENCY, D.OUTBOUND, PriceNote.FREE_EMERGENCY),
    ],
)
def test_free_calls(cls: CallClass, direction: Direction, note: PriceNote) -> None:
    p = call(cls, direction, 300)
    assert p.wholesale is not None and p.retail is not None
    assert p.wholesale.amount == 0 and p.retail.amount == 0
    assert p.notes == (note,)


def test_unanswered_costs_nothing() -> None:
    prof = BillingProfile("cf", per_minute=25_000, connect_fee=10_000)
    p = call(C.LOCAL, D.OUTBOUND, 0, profile=prof)
    assert p.wholesale is not None and p.retail is not None
    assert (p.wholesale.amount, p.retail.amount) == (0, 0)
    assert p.notes == (PriceNote.UNANSWERED,)


def test_invalid_never_rated() -> None:
    p = call(C.INVALID, D.OUTBOUND, 60)
    assert p.wholesale is None and p.retail is None and p.notes == (PriceNote.INVALID,)
    assert p.margin is None


def test_international_with_decks() -> None:
    platform = RateDeck([Rate("w-uk", "44", 30_000, 0, 6, 6, Rounding.HALF_UP, T0)])
    retail_deck = RateDeck([Rate("r-uk", "44", 90_000, 0, 60, 60, Rounding.UP, T0)])
    prof = BillingProfile("intl", per_minute=25_000, international_deck=retail_deck)
    p = call(
        C.INTERNATIONAL, D.OUTBOUND, 61, profile=prof, number_digits="442079460123", wholesale_deck=platform
    )
    assert p.wholesale is not None and p.wholesale.rate_id == "w-uk" and p.wholesale.amount == 33_000
    assert p.retail is not None and p.retail.rate_id == "r-uk"
    assert p.retail.amount == 180_000  # 61 s -> 120 s at 60/60
    assert p.notes == ()


def test_international_without_rates_is_flagged() -> None:
    p = call(C.INTERNATIONAL, D.OUTBOUND, 60, number_digits="33142685300")
    assert p.wholesale is None
    assert p.retail is not None and p.retail.amount == 25_000
    assert p.notes == (PriceNote.NO_WHOLESALE_RATE, PriceNote.RETAIL_DEFAULT_RATE)


def test_international_flat_rate() -> None:
    prof = BillingProfile("intl", per_minute=25_000, international_per_minute=150_000)
    p = call(C.INTERNATIONAL, D.OUTBOUND, 60, profile=prof, number_digits="33142685300")
    assert p.retail is not None and p.retail.amount == 150_000
    assert PriceNote.RETAIL_DEFAULT_RATE not in p.notes


def test_premium_priced_and_marked() -> None:
    platform = RateDeck([Rate("w-900", "1900", 500_000, 0, 60, 60, Rounding.UP, T0)])
    prof = BillingProfile("p", per_minute=25_000, international_per_minute=900_000)
    p = call(C.PREMIUM, D.OUTBOUND, 30, profile=prof, number_digits="19005550123", wholesale_deck=platform)
    assert p.wholesale is not None and p.wholesale.amount == 500_000
    assert p.retail is not None and p.retail.amount == 450_000  # 30 s at $0.90/min, 6/6 profile increments
    assert p.notes == (PriceNote.PREMIUM,)


def test_enterprise_without_contract_is_unrated_wholesale() -> None:
    p = call(C.LOCAL, D.OUTBOUND, 60, tier=Tier.ENTERPRISE)
    assert p.wholesale is None and p.retail is not None
    assert p.notes == (PriceNote.NO_WHOLESALE_RATE,)


def test_retail_rate_fallback_flag() -> None:
    r, fell_back = retail_rate(PAYG, C.PREMIUM, D.OUTBOUND, None, NOW)
    assert r is not None and r.per_minute == 25_000 and fell_back
    r, fell_back = retail_rate(PAYG, C.EMERGENCY, D.OUTBOUND, None, NOW)
    assert r is None and not fell_back
    no_in = BillingProfile("no-in", per_minute=25_000, charge_inbound=False)
    assert retail_rate(no_in, C.INTERNAL, D.INBOUND, None, NOW) == (None, False)


def test_input_validation() -> None:
    with pytest.raises(ValueError):
        call(C.LOCAL, D.OUTBOUND, -1)
    with pytest.raises(ValueError):
        call(C.LOCAL, D.OUTBOUND, 10, start=datetime(2025, 6, 1))
    with pytest.raises(ValueError):
        BillingProfile("", per_minute=1)
    with pytest.raises(ValueError):
        BillingProfile("x", per_minute=-1)
    with pytest.raises(ValueError):
        BillingProfile("x", per_minute=1, increment_seconds=0)
    with pytest.raises(ValueError):
        BillingProfile("x", per_minute=1, toll_free_per_minute=-5)


@given(
    st.sampled_from([C.LOCAL, C.TOLL_FREE]),
    st.sampled_from([D.INBOUND, D.OUTBOUND]),
    st.sampled_from([Tier.STARTER, Tier.PROFESSIONAL, Tier.BUSINESS]),
    st.integers(0, 20_000),
    st.integers(22_000, 1_000_000),
)
def test_retail_at_or_above_wholesale_never_loses_money(
    cls: CallClass, direction: Direction, tier: Tier, seconds: int, retail_pm: int
) -> None:
    # Same 6/6 increments on both sides: a retail rate >= every wholesale rate keeps margin >= 0.
    p = call(cls, direction, seconds, tier=tier, profile=BillingProfile("m", per_minute=retail_pm))
    assert p.margin is not None and p.margin >= 0
