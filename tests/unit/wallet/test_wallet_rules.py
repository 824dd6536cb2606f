"""The wallet's pure rules: entry kinds of calls, references, when to recharge, amounts,
and the notification payload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from controlplane.signals import WalletChanged
from controlplane.wallet.follower import parse
from controlplane.wallet.models import (MAX_AMOUNT_MICROS, EntryKind, RechargeSettings, amount_errors,
                                        call_reference, needs_recharge, recharge_reference, usage_kind)


@pytest.mark.parametrize("call_class, kind", [
    ("local", EntryKind.USAGE_LOCAL), ("toll_free", EntryKind.USAGE_TOLL_FREE),
    ("international", EntryKind.USAGE_INTERNATIONAL), ("premium", EntryKind.USAGE_INTERNATIONAL),
    ("internal", EntryKind.USAGE_LOCAL), ("emergency", EntryKind.USAGE_LOCAL), ("invalid", EntryKind.USAGE_LOCAL)])
def test_a_calls_usage_kind_follows_its_class(call_class: str, kind: EntryKind) -> None:
    assert usage_kind(call_class) is kind


def test_the_eleven_kinds_of_the_issue() -> None:
    assert [k.value for k in EntryKind] == [
        "top_up", "auto_recharge", "usage_local", "usage_toll_free", "usage_international", "monthly_extension",
        "monthly_did_local", "monthly_did_toll_free", "setup_fee", "refund", "manual_adjustment"]


def test_the_recharge_reference_is_the_utc_hour() -> None:
    at = datetime(2026, 5, 4, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5)))
    assert recharge_reference("ptr_1", at) == "recharge:ptr_1:2026-05-05T04"
    assert recharge_reference("ptr_1", at + timedelta(seconds=1)) == "recharge:ptr_1:2026-05-05T05"
    same_hour = datetime(2026, 5, 5, 4, 0, tzinfo=UTC)
    assert recharge_reference("ptr_1", same_hour) == recharge_reference("ptr_1", at)
    assert call_reference("call_ab") == "call:call_ab"


@pytest.mark.parametrize("balance, settings, due", [
    (49_999_999, RechargeSettings(True, 50_000_000, 100_000_000), True),
    (50_000_000, RechargeSettings(True, 50_000_000, 100_000_000), False),  # "falls below"
    (-1, RechargeSettings(False, 50_000_000, 100_000_000), False),
    (-1, RechargeSettings(True, 50_000_000, 0), False),
    (0, RechargeSettings(True, 0, 100_000_000), False), (-1, RechargeSettings(True, 0, 100_000_000), True)])
def test_recharge_when_enabled_and_below(balance: int, settings: RechargeSettings, due: bool) -> None:
    assert needs_recharge(balance, settings) is due


@pytest.mark.parametrize("value, cents, ok", [
    (1, False, True), (0, False, False), (-10_000, False, False), (MAX_AMOUNT_MICROS, False, True),
    (MAX_AMOUNT_MICROS + 1, False, False), (10_000, True, True), (10_001, True, False), (5_000, True, False)])
def test_amounts(value: int, cents: bool, ok: bool) -> None:
    errors = amount_errors("amount_micros", value, cents=cents)
    assert (errors == []) is ok
    assert all(e.field == "amount_micros" for e in errors)


def test_zero_allowed_where_asked() -> None:
    assert amount_errors("threshold_micros", 0, cents=False, allow_zero=True) == []
    assert amount_errors("threshold_micros", -1, cents=False, allow_zero=True)[0].field == "threshold_micros"


@pytest.mark.parametrize("payload, change", [
    ("ptr_1 -4750000", WalletChanged("ptr_1", -4_750_000)), ("ptr_1 12", WalletChanged("ptr_1", 12)),
    ("ptr_1", None), ("ptr_1 x", None), (" 12", None), ("", None)])
def test_the_notification_payload(payload: str, change: WalletChanged | None) -> None:
    assert parse(payload) == change
