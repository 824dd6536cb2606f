"""Each money-bearing view takes the platform currency set at start (controlplane.shared.money)."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest

from controlplane.calls.models import WalletView
from controlplane.numbers.models import AvailableNumber, NumberKind
from controlplane.shared import money


@pytest.fixture
def euro() -> Iterator[None]:
    before = money.currency()
    money.set_currency("EUR")
    yield
    money.set_currency(before)


def test_views_default_to_usd() -> None:
    assert WalletView(partner_id="p", balance_micros=1).currency == "USD"


def test_views_show_the_configured_currency(euro: None) -> None:
    number = AvailableNumber(number="+14155550123", kind=NumberKind.LOCAL, region=None, rate_center=None,
                             monthly_price_micros=1, setup_fee_micros=1, per_minute_micros=1)
    assert msgspec.json.decode(msgspec.json.encode(number))["currency"] == "EUR"
    assert WalletView(partner_id="p", balance_micros=1).currency == "EUR"
