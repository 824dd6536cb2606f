"""The platform operator's token: its own secret, never the service token's value."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from controlplane.config import Config, ConfigError, load_config
from controlplane.daemon import Daemon


def test_generated_once_into_its_own_file_apart_from_the_service_token(tmp_path: Path) -> None:
    daemon = Daemon(Config(data_dir=str(tmp_path)))
    platform, service = daemon.platform_token, daemon.service_token
    assert platform != service and len(platform) >= 32
    path = tmp_path / "secrets" / "platform_token"
    assert path.read_text().strip() == platform and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Daemon(Config(data_dir=str(tmp_path))).platform_token == platform  # kept across restarts


def test_the_configured_value_wins(tmp_path: Path) -> None:
    config = load_config(None, environ={"CONTROLPLANE_HTTP__PLATFORM_TOKEN": "operator-secret",
                                        "CONTROLPLANE_DATA_DIR": str(tmp_path)})
    assert Daemon(config).platform_token == "operator-secret"
    assert not (tmp_path / "secrets" / "platform_token").exists()


def test_the_same_value_for_both_tokens_is_refused() -> None:
    with pytest.raises(ConfigError, match="http.platform_token: must differ from http.service_token"):
        load_config(None, environ={"CONTROLPLANE_HTTP__PLATFORM_TOKEN": "same",
                                   "CONTROLPLANE_HTTP__SERVICE_TOKEN": "same"})
