"""The payments section: none configured = disabled; a bad value stops start-up naming its key."""

from __future__ import annotations

import pytest

from controlplane.config import ConfigError, load_config
from controlplane.payments.stripe_provider import StripeProvider, provider_from_config


def test_no_key_means_payments_disabled() -> None:
    config = load_config(environ={})
    assert config.payments.stripe_secret_key is None
    assert provider_from_config(config.payments) is None


def test_the_environment_configures_stripe() -> None:
    config = load_config(environ={"CONTROLPLANE_PAYMENTS__STRIPE_SECRET_KEY": "sk_test_abc",
                                  "CONTROLPLANE_PAYMENTS__STRIPE_API_BASE": "http://127.0.0.1:8420"})
    assert (config.payments.stripe_secret_key, config.payments.stripe_api_base) == (
        "sk_test_abc", "http://127.0.0.1:8420")
    assert isinstance(provider_from_config(config.payments), StripeProvider)


@pytest.mark.parametrize("environ, key", [
    ({"CONTROLPLANE_PAYMENTS__STRIPE_SECRET_KEY": "pk_test_abc"}, "payments.stripe_secret_key"),
    ({"CONTROLPLANE_PAYMENTS__STRIPE_SECRET_KEY": "sk_test abc"}, "payments.stripe_secret_key"),
    ({"CONTROLPLANE_PAYMENTS__STRIPE_API_BASE": "ftp://stripe"}, "payments.stripe_api_base"),
    ({"CONTROLPLANE_PAYMENTS__STRIPE_API_BASE": "http://127.0.0.1:8420", "CONTROLPLANE_MODE": "production"},
     "payments.stripe_api_base"),
    ({"CONTROLPLANE_PAYMENTS__TIMEOUT": "0"}, "payments.timeout"),
    ({"CONTROLPLANE_PAYMENTS__WEBHOOK": "x"}, "payments.webhook"),
])
def test_bad_values_name_their_key(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(environ=environ)
