"""Multi-node mode: node ids fit the nodes table and a NOTIFY channel; secrets every daemon
must share are refused when left to be generated (each daemon would generate its own)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.config import ConfigError, load_config
from controlplane.preflight import unshared_secrets

CONTROLPLANE = Path(sys.executable).parent / "controlplane"
SECRETS = {"CONTROLPLANE_HTTP__SERVICE_TOKEN": "s" * 40, "CONTROLPLANE_HTTP__PLATFORM_TOKEN": "p" * 40,
           "CONTROLPLANE_WEBHOOKS__SECRET_KEY": "k" * 44}


def test_single_node_mode_needs_no_configured_secrets() -> None:
    config = load_config(environ={})
    assert config.node.id == "local" and not config.node.multi
    assert unshared_secrets(config) == []


def test_multi_node_mode_names_every_generated_secret() -> None:
    config = load_config(environ={"CONTROLPLANE_NODE__ID": "node-a"})
    assert config.node.multi
    assert unshared_secrets(config) == ["http.service_token", "http.platform_token", "webhooks.secret_key"]
    partly = load_config(environ={"CONTROLPLANE_NODE__ID": "node-a",
                                  "CONTROLPLANE_HTTP__SERVICE_TOKEN": "s" * 40})
    assert unshared_secrets(partly) == ["http.platform_token", "webhooks.secret_key"]
    assert unshared_secrets(load_config(environ={"CONTROLPLANE_NODE__ID": "node-a", **SECRETS})) == []


@pytest.mark.parametrize("bad", ["Node-A", "1abc", "a_b", "a;b", "a" * 33, ""])
def test_a_node_id_outside_the_nodes_tables_pattern_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="node.id"):
        load_config(environ={"CONTROLPLANE_NODE__ID": bad} if bad else {"CONTROLPLANE_NODE__ID": " "})


def test_serve_refuses_generated_secrets_in_multi_node_mode_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    done = subprocess.run([str(CONTROLPLANE), "serve"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**clean, "CONTROLPLANE_DATA_DIR": str(tmp_path / "var"),
                               "CONTROLPLANE_HTTP__PORT": str(port), "CONTROLPLANE_NODE__ID": "node-a",
                               "CONTROLPLANE_HTTP__SERVICE_TOKEN": "s" * 40})
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("controlplane: http.platform_token, webhooks.secret_key: not set, and node 'node-a'")
    assert "set the same value in every daemon's configuration" in line
    assert not (tmp_path / "var").exists()
