"""PUT /v1/account/stripe input: every field at fault is named, nothing is guessed."""

from __future__ import annotations

import pytest

from controlplane.collection.models import ConnectSettings, CustomKeys, StripeModeUpdate
from controlplane.collection.rules import StripeMode
from controlplane.collection.services import check_mode
from controlplane.shared.problems import Problem


def _fields(body: StripeModeUpdate) -> list[str]:
    with pytest.raises(Problem) as caught:
        check_mode(body)
    assert caught.value.status == 422
    return [e.field for e in caught.value.errors]


def test_each_mode_takes_what_it_needs() -> None:
    assert check_mode(StripeModeUpdate("platform")) == (StripeMode.PLATFORM, None, None, None)
    assert check_mode(StripeModeUpdate("connect", connect=ConnectSettings("acct_1AbC"))) == (
        StripeMode.CONNECT, "acct_1AbC", None, None)
    key = "sk_test_" + "a" * 24
    assert check_mode(StripeModeUpdate("custom_keys", custom_keys=CustomKeys(key, "pk_test_" + "b" * 24))) == (
        StripeMode.CUSTOM_KEYS, None, key, "pk_test_" + "b" * 24)


def test_every_field_at_fault_is_named() -> None:
    assert _fields(StripeModeUpdate("stripe")) == ["mode"]
    assert _fields(StripeModeUpdate("connect")) == ["connect"]
    assert _fields(StripeModeUpdate("connect", connect=ConnectSettings("1234"))) == ["connect.account_id"]
    assert _fields(StripeModeUpdate("custom_keys", custom_keys=CustomKeys("pk_live_xxxxxxxxxxxx", "sk_x"))) == [
        "custom_keys.secret_key", "custom_keys.publishable_key"]
    assert _fields(StripeModeUpdate("platform", custom_keys=CustomKeys("sk_test_" + "a" * 24))) == ["custom_keys"]
    # A card number pasted where the key goes is refused, not stored.
    assert _fields(StripeModeUpdate("custom_keys", custom_keys=CustomKeys("4242424242424242"))) == [
        "custom_keys.secret_key"]
