"""The built wheel carries its templates: installed non-editable into a fresh virtualenv
(dependencies borrowed from the project's own venv, no network), it renders the whole
Asterisk configuration with ``controlplane asterisk config --out`` from outside the
source tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from wheel_support import build_wheel, fresh_venv


def test_the_wheel_renders_the_asterisk_configuration(tmp_path: Path, database_dsn: str) -> None:
    wheel = build_wheel(tmp_path)
    venv = fresh_venv(tmp_path, wheel)
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import controlplane, provisioning; print(controlplane.__file__)"],
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert where.startswith(str(venv)), where
    package = Path(where).parent
    assert (package / "asterisk" / "base_etc" / "asterisk.conf").is_file()
    assert not (package / "asterisk" / "base_etc").is_symlink()
    assert (package.parent / "provisioning" / "templates" / "tenant.conf.j2").is_file()
    assert (package / "mail" / "templates" / "message.html.j2").is_file()

    config = tmp_path / "controlplane.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"), "database": {"dsn": database_dsn},
        "asterisk": {"run": "external", "instance": "wheel", "config_dir": str(tmp_path / "instance")},
        "carrier": {"host": "192.0.2.1", "match": "192.0.2.0/24"},
        "emergency": {"trunk_host": "192.0.2.2"}}))
    out = tmp_path / "out"
    done = subprocess.run([str(venv / "bin" / "controlplane"), "-c", str(config), "asterisk", "config",
                           "--out", str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    etc = out / "etc"
    names = {p.name for p in etc.iterdir()}
    assert {"asterisk.conf", "pjsip.conf", "modules.conf", "sorcery.conf", "extconfig.conf", "res_pgsql.conf",
            "cdr_pgsql.conf", "pjsip_carrier.conf", "pjsip_extra.conf", "rtp.conf",
            "extensions_tenants.conf"} <= names
    assert "dbhost = 127.0.0.1" in (etc / "res_pgsql.conf").read_text()
    assert "[from-carrier]" in (etc / "extensions_tenants.conf").read_text()
    assert "astetcdir => /srv/controlplane/wheel/etc" in (etc / "asterisk.conf").read_text()
    assert {p.name for p in out.iterdir()} >= {"etc", "run", "log", "spool", "db"}
