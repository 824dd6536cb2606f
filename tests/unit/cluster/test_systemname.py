"""Several Asterisks on one database: each names its system after its node, so their uniqueids
(the call records' key) cannot collide; a single node's configuration is unchanged."""

from __future__ import annotations

from controlplane.asterisk.credentials import AsteriskCredentials
from controlplane.asterisk.runner.config_files import render_config, template_values, with_systemname
from controlplane.config import Config, NodeConfig

CREDS = AsteriskCredentials("ari", "aripw", "ami", "amipw")
TEMPLATES = {"asterisk.conf": "[directories]\nastetcdir => {{instance_dir}}/etc\n\n[options]\nhideconnect = yes\n"}


def test_multi_node_asterisk_conf_names_the_system_after_the_node() -> None:
    values = template_values(Config(node=NodeConfig(id="node-a", peers=("node-b",))), CREDS, moddir="/m")
    text = render_config(TEMPLATES, values)["asterisk.conf"]
    assert "[options]\nsystemname = node-a\nhideconnect = yes\n" in text


def test_single_node_asterisk_conf_has_no_systemname() -> None:
    values = template_values(Config(), CREDS, moddir="/m")
    assert "systemname" not in values
    assert "systemname" not in render_config(TEMPLATES, values)["asterisk.conf"]


def test_a_template_without_options_gets_the_section() -> None:
    assert with_systemname("[directories]\n", "n1").endswith("[options]\nsystemname = n1\n")
