from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cdr_ingest.classify import CallClass, Direction
from cdr_ingest.rates import Rounding
from cdr_ingest.rating import rate_call
from cdr_ingest.tiers import DEFAULT_SCHEDULE, Tier, TierPrices, TierSchedule, wholesale_rate

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tier", "fee", "max_ext", "per_ext", "did_local", "did_tf", "local", "tf"),
    [
        (Tier.STARTER, 249_000_000, 300, 3_000_000, 1_750_000, 2_500_000, 20_000, 22_000),
        (Tier.PROFESSIONAL, 549_000_000, 1_000, 2_000_000, 1_500_000, 2_250_000, 16_000, 19_000),
        (Tier.BUSINESS, 999_000_000, None, 1_250_000, 1_250_000, 2_000_000, 14_000, 17_000),
        (Tier.ENTERPRISE, None, None, None, None, None, None, None),
    ],
)
def test_seed_table(
    tier: Tier,
    fee: int | None,
    max_ext: int | None,
    per_ext: int | None,
    did_local: int | None,
    did_tf: int | None,
    local: int | None,
    tf: int | None,
) -> None:
    p = DEFAULT_SCHEDULE.prices_at(tier, NOW)
    assert p is not None
    assert (p.monthly_fee, p.max_extensions, p.per_extension) == (fee, max_ext, per_ext)
    assert (p.did_local_monthly, p.did_toll_free_monthly) == (did_local, did_tf)
    assert (p.local_per_minute, p.toll_free_per_minute) == (local, tf)


def test_toll_free_dearer_than_local_on_every_priced_tier() -> None:
    for tier in (Tier.STARTER, Tier.PROFESSIONAL, Tier.BUSINESS):
        p = DEFAULT_SCHEDULE.prices_at(tier, NOW)
        assert p is not None and p.toll_free_per_minute > p.local_per_minute  # type: ignore[operator]


@pytest.mark.parametrize("direction", [Direction.INBOUND, Direction.OUTBOUND])
def test_wholesale_rate_same_both_directions(direction: Direction) -> None:
    r = wholesale_rate(Tier.STARTER, CallClass.LOCAL, direction, NOW)
    assert r is not None
    assert r.rate_id == f"tier:starter:local:{direction.value}"
    assert (r.per_minute, r.connect_fee, r.min_seconds, r.increment_seconds) == (20_000, 0, 6, 6)
    assert r.rounding is Rounding.HALF_UP
    tf = wholesale_rate(Tier.STARTER, CallClass.TOLL_FREE, direction, NOW)
    assert tf is not None and tf.per_minute == 22_000
    assert tf.rate_id == f"tier:starter:toll_free:{direction.value}"


def test_wholesale_prices() -> None:
    r = wholesale_rate(Tier.PROFESSIONAL, CallClass.TOLL_FREE, Direction.INBOUND, NOW)
    assert r is not None
    # 61 s -> 66 s at 6/6; $0.019/min * 66 s = 20,900 micro-units
    assert rate_call(r, 61).amount == 20_900
    b = wholesale_rate(Tier.BUSINESS, CallClass.LOCAL, Direction.OUTBOUND, NOW)
    assert b is not None and rate_call(b, 3600).amount == 840_000  # 60 min * $0.014


@pytest.mark.parametrize(
    "cls",
    [CallClass.INTERNAL, CallClass.EMERGENCY, CallClass.INTERNATIONAL, CallClass.PREMIUM, CallClass.INVALID],
)
def test_no_wholesale_rate_outside_table(cls: CallClass) -> None:
    assert wholesale_rate(Tier.STARTER, cls, Direction.OUTBOUND, NOW) is None


def test_no_wholesale_rate_for_internal_direction_or_enterprise() -> None:
    assert wholesale_rate(Tier.STARTER, CallClass.LOCAL, Direction.INTERNAL, NOW) is None
    assert wholesale_rate(Tier.ENTERPRISE, CallClass.LOCAL, Direction.OUTBOUND, NOW) is None


def test_enterprise_contract_and_prospective_change() -> None:
    change = NOW + timedelta(days=30)
    base = DEFAULT_SCHEDULE.prices_at(Tier.ENTERPRISE, NOW)
    assert base is not None
    fees = (1_500_000_000, None, 1_000_000, 1_000_000, 1_800_000)
    contract = TierPrices(Tier.ENTERPRISE, base.effective_from, *fees, 11_000, 13_000)
    raise_ = TierPrices(Tier.ENTERPRISE, change, *fees, 12_000, 14_000)
    sched = DEFAULT_SCHEDULE.with_prices(contract, raise_)
    just_before = change - timedelta(seconds=1)
    before = wholesale_rate(Tier.ENTERPRISE, CallClass.LOCAL, Direction.OUTBOUND, just_before, sched)
    after = wholesale_rate(Tier.ENTERPRISE, CallClass.LOCAL, Direction.OUTBOUND, change, sched)
    assert before is not None and before.per_minute == 11_000 and before.effective_to == change
    assert after is not None and after.per_minute == 12_000
    assert after.effective_from == change and after.effective_to is None
    # the default schedule is untouched
    assert wholesale_rate(Tier.ENTERPRISE, CallClass.LOCAL, Direction.OUTBOUND, change) is None
    # other tiers keep the seed prices
    s = wholesale_rate(Tier.STARTER, CallClass.LOCAL, Direction.OUTBOUND, change, sched)
    assert s is not None and s.per_minute == 20_000


def test_schedule_validation() -> None:
    p = DEFAULT_SCHEDULE.prices_at(Tier.STARTER, NOW)
    assert p is not None
    with pytest.raises(ValueError):
        TierSchedule([p, p])
    with pytest.raises(ValueError):
        TierPrices(Tier.STARTER, datetime(2025, 1, 1), 1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError):
        TierPrices(Tier.STARTER, NOW, -1, 1, 1, 1, 1, 1, 1)
    assert TierSchedule([]).prices_at(Tier.STARTER, NOW) is None
