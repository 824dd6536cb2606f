from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.config import AsteriskRunMode, ConfigError, Mode, load_config


def test_defaults_need_no_file() -> None:
    config = load_config(None, environ={})
    assert config.mode is Mode.DEVELOPMENT
    assert config.http.host == "127.0.0.1"
    assert config.database.dsn is None
    assert config.asterisk.run is AsteriskRunMode.AUTO


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("http:\n  port: 9000\nasterisk:\n  run: external\n")
    config = load_config(path, environ={"CONTROLPLANE_HTTP__PORT": "9100", "OTHER": "x"})
    assert config.http.port == 9100
    assert config.asterisk.run is AsteriskRunMode.EXTERNAL


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CONTROLPLANE_HTTP__PORT": "abc"}, "http.port: Expected `int`"),
        ({"CONTROLPLANE_HTTP__PROT": "1"}, "http.prot: unknown key"),
        ({"CONTROLPLANE_BOGUS": "1"}, "bogus: unknown key"),
        ({"CONTROLPLANE_ASTERISK__RUN": "vm"}, "asterisk.run: Invalid enum value 'vm'"),
        ({"CONTROLPLANE_HTTP__PORT": "70000"}, "http.port: 70000 is not a TCP/UDP port"),
        ({"CONTROLPLANE_LOGGING__FORMAT": "xml"}, "logging.format"),
        ({"CONTROLPLANE_MODE": "staging"}, "mode: Invalid enum value 'staging'"),
        ({"CONTROLPLANE_BILLING__CURRENCY": "usd"}, "billing.currency: Expected `str` matching regex"),
        ({"CONTROLPLANE_BILLING__CURRENCY": "EURO"}, "billing.currency: Expected `str` matching regex"),
    ],
)
def test_bad_values_name_their_key(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ=environ)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_platform_currency_defaults_to_usd_and_is_configurable() -> None:
    assert load_config(None, environ={}).billing.currency == "USD"
    assert load_config(None, environ={"CONTROLPLANE_BILLING__CURRENCY": "EUR"}).billing.currency == "EUR"


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("database:\n  dns: postgresql://x\n")
    with pytest.raises(ConfigError, match=r"database\.dns: unknown key"):
        load_config(path, environ={})


def test_example_config_is_valid() -> None:
    example = Path(__file__).parents[2] / "controlplane.example.yaml"
    load_config(example, environ={})
