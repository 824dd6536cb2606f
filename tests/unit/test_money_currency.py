"""Each money-bearing view takes the platform currency set at start (controlplane.shared.money)."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest

from controlplane.numbers.models import AvailableNumber, NumberKind
from controlplane.shared import money
from controlplane.wallet.models import AutoRechargeView, WalletView


@pytest.fixture
def euro() -> Iterator[None]:
    before = money.currency()
    money.set_currency("EUR")
    yield
    money.set_currency(before)


def _wallet() -> WalletView:
    return WalletView(partner_id="p", balance_micros=1, low_balance_threshold_micros=0,
                      auto_recharge=AutoRechargeView(enabled=False, threshold_micros=0, amount_micros=0))


def test_views_default_to_usd() -> None:
    assert _wallet().currency == "USD"


def test_views_show_the_configured_currency(euro: None) -> None:
    number = AvailableNumber(number="+14155550123", kind=NumberKind.LOCAL, region=None, rate_center=None,
                             monthly_price_micros=1, setup_fee_micros=1, per_minute_micros=1)
    assert msgspec.json.decode(msgspec.json.encode(number))["currency"] == "EUR"
    assert _wallet().currency == "EUR"
    assert _wallet().auto_recharge.currency == "EUR"
