"""Deployment rules without I/O beyond a temp dir and a loopback socket: config ranges,
the start-up checks, the one Asterisk configuration (merge rule, RTP, carrier identity)
and what a changed file needs from a running Asterisk."""

from __future__ import annotations

import ast
import asyncio
import socket
from pathlib import Path

import pytest

from controlplane.asterisk.configuration import (
    asterisk_configuration, compose, merge_files, reload_plan, write_instance,
)
from controlplane.asterisk.runner import AsteriskError, base_templates
from controlplane.calls.asterisk_files import carrier_pjsip_conf
from controlplane.config import CarrierConfig, Config, ConfigError, EmergencyConfig, Mode, load_config
from controlplane.plugin_list import PLUGINS
from controlplane.preflight import Severity, StartupError, check, findings

ROOT = Path(__file__).resolve().parents[2]


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path, environ={})


@pytest.mark.parametrize(("yaml_text", "key"), [
    ("webhooks: {timeout: -5}", "webhooks.timeout"),
    ("webhooks: {max_concurrency: 0}", "webhooks.max_concurrency"),
    ("webhooks: {per_endpoint_concurrency: 0}", "webhooks.per_endpoint_concurrency"),
    ("calls: {reconcile_seconds: 0}", "calls.reconcile_seconds"),
    ("calls: {settle_seconds: -1}", "calls.settle_seconds"),
    ("limits: {max_call_seconds: 0}", "limits.max_call_seconds"),
    ("database: {pool_max: 0}", "database.pool_max"),
    ("database: {pool_min: 0}", "database.pool_min"),
    ("asterisk: {boot_timeout: 0}", "asterisk.boot_timeout"),
    ("asterisk: {rtp_start: 10001}", "asterisk.rtp_start"),
    ("asterisk: {rtp_start: 80}", "asterisk.rtp_start"),
    ("asterisk: {rtp_start: 20000, rtp_end: 20000}", "asterisk.rtp_end"),
    ("asterisk: {rtp_end: 70000}", "asterisk.rtp_end"),
    ("carrier: {match: '10.0.0.1;x'}", "carrier.match"),
    ("carrier: {match: \"10.0.0.1\\n[evil]\"}", "carrier.match"),
    ("carrier: {host: 'a b'}", "carrier.host"),
    ("carrier: {port: 0}", "carrier.port"),
    ("carrier: {endpoint: 'car]rier'}", "carrier.endpoint"),
    ("emergency: {trunk_host: 'x;y'}", "emergency.trunk_host"),
    ("asterisk: {run: local, config_dir: /srv/x}", "asterisk.config_dir"),
])
def test_out_of_range_values_are_refused_naming_the_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, yaml_text)
    message = str(info.value)
    assert f": {key}:" in message and "\n" not in message, message


def test_good_values_load(tmp_path: Path) -> None:
    config = _load(tmp_path, "asterisk: {run: external, config_dir: /srv/x, rtp_start: 30000, rtp_end: 30999}\n"
                             "carrier: {host: sip.carrier.example, match: '192.0.2.0/24, 198.51.100.7'}")
    assert config.asterisk.rtp_end == 30999 and config.carrier.match


def test_a_taken_http_port_stops_start_up_naming_the_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = Config(emergency=EmergencyConfig(trunk_host="127.0.0.1"))
        config = config.__class__(**{**{f: getattr(config, f) for f in config.__struct_fields__},
                                     "http": config.http.__class__(port=port)})
        with pytest.raises(StartupError) as info:
            check(config)
    assert f"http.port: 127.0.0.1:{port} is already in use" in str(info.value)


def test_a_free_http_port_passes() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = load_config(None, environ={"CONTROLPLANE_HTTP__PORT": str(port)})
    assert all(f.severity is Severity.WARNING for f in check(config))


def test_production_refuses_to_start_without_an_emergency_trunk() -> None:
    production = Config(mode=Mode.PRODUCTION)
    (error,) = [f for f in findings(production) if f.severity is Severity.ERROR]
    assert error.key == "emergency.trunk_host"
    development = [f for f in findings(Config()) if f.key == "emergency.trunk_host"]
    assert [f.severity for f in development] == [Severity.WARNING]
    assert not [f for f in findings(Config(mode=Mode.PRODUCTION, emergency=EmergencyConfig(relay_host="10.0.0.9")))
                if f.severity is Severity.ERROR]


def test_carrier_without_match_is_warned_and_identified_by_its_address_only() -> None:
    carrier = CarrierConfig(host="192.0.2.10", port=5070)
    assert [f.key for f in findings(Config(carrier=carrier)) if f.key.startswith("carrier")] == ["carrier.match"]
    text = carrier_pjsip_conf(carrier)
    assert "identify_by = ip" in text and "match = 192.0.2.10" in text
    assert "send_connected_line = no" in text  # no re-INVITE naming an internal extension
    matched = carrier_pjsip_conf(CarrierConfig(host="192.0.2.10", match="192.0.2.0/28"))
    assert "match = 192.0.2.0/28" in matched and "match = 192.0.2.10" not in matched


def test_plugin_files_of_one_name_are_concatenated_in_plugin_order() -> None:
    merged = merge_files([{"pjsip_extra.conf": "[a]\ntype = aor"}, {"x.conf": "x\n"},
                          {"pjsip_extra.conf": "[b]\ntype = aor\n"}])
    assert merged == {"pjsip_extra.conf": "[a]\ntype = aor\n[b]\ntype = aor\n", "x.conf": "x\n"}


def test_a_plugin_replaces_seed_files_but_never_other_base_files(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path))
    rendered = compose(config, base_templates(), {"res_pgsql.conf": "[general]\ndbhost = db\n"}, moddir="/m")
    assert rendered.files["res_pgsql.conf"] == "[general]\ndbhost = db\n"
    assert "res_pgsql.conf" in rendered.owned and "pjsip.conf" not in rendered.owned
    with pytest.raises(AsteriskError, match="pjsip.conf"):
        compose(config, base_templates(), {"pjsip.conf": "[x]\n"}, moddir="/m")


def test_rtp_range_is_rendered_from_config(tmp_path: Path) -> None:
    config = load_config(None, environ={"CONTROLPLANE_ASTERISK__RTP_START": "40000",
                                        "CONTROLPLANE_ASTERISK__RTP_END": "40099",
                                        "CONTROLPLANE_DATA_DIR": str(tmp_path)})
    rtp = compose(config, base_templates(), {}, moddir="/m").files["rtp.conf"]
    assert "rtpstart = 40000\n" in rtp and "rtpend = 40099\n" in rtp
    default = compose(Config(data_dir=str(tmp_path)), base_templates(), {}, moddir="/m").files["rtp.conf"]
    assert "rtpstart = 10000\n" in default and "rtpend = 19999\n" in default


def test_full_configuration_without_the_database(tmp_path: Path) -> None:
    """Every plugin's files but the ones that need the database; nothing pruned then."""
    config = Config(data_dir=str(tmp_path), carrier=CarrierConfig(host="192.0.2.1"),
                    emergency=EmergencyConfig(trunk_host="192.0.2.2", relay_host="192.0.2.3"))
    rendered = asyncio.run(asterisk_configuration(config, PLUGINS, dsn=None, moddir="/m"))
    files = rendered.files
    assert {"asterisk.conf", "sorcery.conf", "extconfig.conf", "pjsip_carrier.conf", "pjsip_extra.conf",
            "rtp.conf", "extensions_tenants.conf"} <= files.keys()
    assert "cdr_pgsql.conf" not in files and "dbhost = /nonexistent" in files["res_pgsql.conf"]
    assert "[cp-emergency]" in files["pjsip_extra.conf"] and not rendered.complete
    assert "astetcdir => /srv/controlplane/default/etc" in files["asterisk.conf"]


def test_writing_keeps_what_an_incomplete_render_left_out(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path / "data"))
    full = compose(config, base_templates(), {"cdr_pgsql.conf": "[global]\n", "pjsip_extra.conf": "[a]\n"},
                   moddir="/m")
    instance = tmp_path / "instance"
    assert "asterisk.conf" in write_instance(instance, full)
    assert {p.name for p in instance.iterdir()} >= {"etc", "run", "log", "spool", "db"}
    partial = compose(config, base_templates(), {"pjsip_extra.conf": "[a]\n"}, moddir="/m", complete=False)
    assert write_instance(instance, partial) == set()
    assert (instance / "etc" / "cdr_pgsql.conf").exists()
    pruned = compose(config, base_templates(), {}, moddir="/m")
    assert write_instance(instance, pruned) == {"cdr_pgsql.conf", "pjsip_extra.conf"}
    assert not (instance / "etc" / "cdr_pgsql.conf").exists()


def test_reload_plan_names_the_module_of_each_changed_file() -> None:
    plan = reload_plan({"pjsip_carrier.conf", "pjsip_extra.conf", "res_pgsql.conf", "extensions_tenants.conf",
                        "cdr_pgsql.conf", "rtp.conf", "manager.conf"})
    assert plan.commands == ("module reload res_config_pgsql.so", "module reload cdr_pgsql.so",
                             "module reload res_pjsip.so", "module reload res_rtp_asterisk.so", "dialplan reload")
    assert plan.restart_needed == ("manager.conf",)
    assert reload_plan(set()).commands == ()


@pytest.mark.parametrize("module", ["controlplane/daemon.py", "controlplane/cli.py",
                                    "controlplane/asterisk/bring_up.py"])
def test_the_daemon_and_the_cli_name_no_plugin(module: str) -> None:
    tree = ast.parse((ROOT / module).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    plugins = {f"controlplane.{p.name}" for p in PLUGINS}
    assert not {m for m in imported if any(m == p or m.startswith(p + ".") for p in plugins)}
