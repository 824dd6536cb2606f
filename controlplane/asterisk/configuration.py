"""The whole Asterisk configuration, for every way Asterisk is started.

The daemon (local, container and external runners), ``controlplane asterisk up``
and ``controlplane asterisk config --out`` all call ``asterisk_configuration``: the
base templates (package data) with their placeholders filled, then every plugin's
``asterisk_files`` in plugin order. The merge rule lives here (``merge_files``).
What a changed file needs from a running Asterisk is ``reload_plan``.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from controlplane.asterisk.credentials import resolve_credentials
from controlplane.asterisk.runner.config_files import (
    RenderedConfig, base_templates, render_config, template_values,
)
from controlplane.asterisk.runner.instance import INSTANCE_SUBDIRS
from controlplane.config import Config
from controlplane.plugins import AsteriskSource, Plugin

log = structlog.get_logger(__name__)
CONNECT_TIMEOUT = 10.0

# Where Debian (the root filesystem, the image) keeps the modules: an Asterisk we do
# not start is assumed to be that build.
_MULTIARCH = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu", "arm64": "aarch64-linux-gnu"}


def debian_moddir() -> str:
    machine = platform.machine()
    return f"/usr/lib/{_MULTIARCH.get(machine, f'{machine}-linux-gnu')}/asterisk/modules"


def merge_files(parts: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """Plugin files in plugin order; two plugins' files of one name are concatenated
    (e.g. ``pjsip_extra.conf``: emergency trunks beside other objects)."""
    merged: dict[str, str] = {}
    for part in parts:
        for name, text in part.items():
            previous = merged.get(name, "")
            if previous and not previous.endswith("\n"):
                previous += "\n"
            merged[name] = previous + text
    return merged


def compose(config: Config, templates: Mapping[str, str], plugin_files: Mapping[str, str], *,
            moddir: str, extra_files: Mapping[str, str] | None = None, complete: bool = True) -> RenderedConfig:
    """Pure: base templates + plugin files (+ a test's own extra files) -> the instance's files."""
    values = template_values(config, resolve_credentials(config), moddir=moddir)
    files = render_config(templates, values, extra_files, plugin_files)
    owned = frozenset(files) - frozenset(templates) | frozenset(plugin_files) | frozenset(extra_files or {})
    return RenderedConfig(files, owned, complete)


async def asterisk_configuration(config: Config, plugins: Sequence[Plugin], *, dsn: str | None,
                                 moddir: str, extra_files: Mapping[str, str] | None = None) -> RenderedConfig:
    """The full configuration of this instance; ``dsn`` None leaves out what needs the database."""
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT) if dsn is not None else None
    try:
        source = AsteriskSource(config=config, dsn=dsn, conn=conn)
        parts = [await plugin.asterisk_files(source) for plugin in plugins]
    finally:
        if conn is not None:
            await conn.close()
    return compose(config, base_templates(), merge_files(parts), moddir=moddir, extra_files=extra_files,
                   complete=dsn is not None)


def write_instance(instance_dir: Path, rendered: RenderedConfig) -> set[str]:
    """The instance directory Asterisk runs from (``etc run log spool db``) with the files in
    ``etc/`` (``asterisk.conf`` last); the names of the files that changed."""
    for sub in INSTANCE_SUBDIRS:
        (instance_dir / sub).mkdir(parents=True, exist_ok=True)
    instance_dir.chmod(0o700)
    return rendered.write(instance_dir / "etc")


@dataclass(frozen=True)
class ReloadPlan:
    commands: tuple[str, ...]
    restart_needed: tuple[str, ...]  # files only a restart of Asterisk reads again


# File -> the CLI command that makes a running Asterisk read it again.
_RELOADS = (
    ("pjsip", "module reload res_pjsip.so"),
    ("res_pgsql.conf", "module reload res_config_pgsql.so"),
    ("cdr_pgsql.conf", "module reload cdr_pgsql.so"),
    ("rtp.conf", "module reload res_rtp_asterisk.so"),
    ("extensions", "dialplan reload"),
)


def reload_plan(changed: set[str]) -> ReloadPlan:
    """Pure: what to run over AMI after ``changed`` files were rewritten under a running Asterisk."""
    commands: list[str] = []
    restart: list[str] = []
    for name in sorted(changed):
        command = next((c for prefix, c in _RELOADS if name.startswith(prefix)), None)
        if command is None:
            restart.append(name)
        elif command not in commands:
            commands.append(command)
    # PJSIP objects may point at the database: reconnect it first.
    commands.sort(key=lambda c: ("res_config_pgsql" not in c, c == "dialplan reload"))
    return ReloadPlan(tuple(commands), tuple(restart))
