"""The SSRF guard's configuration: on in every mode; loopback only by an explicit development key."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from controlplane.config import ConfigError, load_config
from controlplane.webhooks.settings import Settings
from controlplane.webhooks.targets import TargetError, check_addresses


def _settings(**environ: str) -> Settings:
    return Settings.from_config(load_config(None, environ={f"CONTROLPLANE_{k}": v for k, v in environ.items()}))


def _allowed(settings: Settings, host: str, address: str) -> bool:
    try:
        check_addresses(host, [ipaddress.ip_address(address)], settings.allow)
    except TargetError:
        return False
    return True


def test_the_defaults_refuse_loopback_and_private_targets_in_development_too() -> None:
    dev = _settings()
    assert not dev.production
    for host, address in [("127.0.0.1", "127.0.0.1"), ("localhost", "::1"), ("10.1.2.3", "10.1.2.3"),
                          ("169.254.169.254", "169.254.169.254")]:
        assert not _allowed(dev, host, address), address
    assert _allowed(dev, "93.184.216.34", "93.184.216.34")


def test_allow_loopback_allows_loopback_and_nothing_else() -> None:
    dev = _settings(WEBHOOKS__ALLOW_LOOPBACK="true")
    assert _allowed(dev, "127.0.0.1", "127.0.0.1") and _allowed(dev, "localhost", "::1")
    assert _allowed(dev, "127.0.0.9", "127.0.0.9")
    assert not _allowed(dev, "10.1.2.3", "10.1.2.3") and not _allowed(dev, "x.test", "169.254.169.254")


def test_allow_loopback_is_refused_in_production() -> None:
    with pytest.raises(ConfigError, match="webhooks.allow_loopback: development mode only"):
        load_config(None, environ={"CONTROLPLANE_MODE": "production", "CONTROLPLANE_WEBHOOKS__ALLOW_LOOPBACK": "true"})


def test_allow_targets_opens_exactly_what_it_lists(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("mode: production\nwebhooks:\n  allow_targets: [10.20.0.0/16, relay.internal]\n")
    prod = Settings.from_config(load_config(path, environ={}))
    assert _allowed(prod, "x.test", "10.20.3.4") and _allowed(prod, "relay.internal", "192.168.1.1")
    assert not _allowed(prod, "x.test", "10.21.0.1") and not _allowed(prod, "127.0.0.1", "127.0.0.1")


@pytest.mark.parametrize("key", ["HTTP__EXPORT_SLOTS", "HTTP__EXPORT_SECONDS"])
def test_export_budget_keys_must_be_positive(key: str) -> None:
    with pytest.raises(ConfigError, match=key.lower().replace("__", ".")):
        load_config(None, environ={f"CONTROLPLANE_{key}": "0"})
