"""Asterisk's configuration: the ``asterisk/etc`` templates, their ``{{placeholders}}``, the files written.

Every ``{{name}}`` is replaced (Asterisk's own ``${VAR}`` syntax is left alone).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from controlplane.asterisk.credentials import AsteriskCredentials
from controlplane.asterisk.runner.interface import AsteriskError
from controlplane.config import Config

# Files the daemon owns after the first start: created from the template once, never overwritten.
SEED_ONLY = frozenset({"extensions_tenants.conf", "res_pgsql.conf"})
INSTANCE_ROOT = PurePosixPath("/srv/controlplane")
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
# Values are written into Asterisk config lines: ';' starts a comment, brackets a section.
_UNSAFE_VALUE = re.compile(r"[;\[\]\s\"'\\]")


def recipe_dir() -> Path:
    """The ``asterisk/`` directory of the repository (templates, Dockerfile, build script)."""
    env = os.environ.get("CONTROLPLANE_ASTERISK_RECIPE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[3] / "asterisk"


def template_values(cfg: Config, creds: AsteriskCredentials, *, moddir: str) -> dict[str, str]:
    a = cfg.asterisk
    values = {
        "instance": a.instance,
        "instance_dir": str(INSTANCE_ROOT / a.instance),
        "moddir": moddir,
        "sip_port": str(a.sip_port),
        "http_port": str(a.http_port),
        "ami_port": str(a.ami_port),
        "ari_user": creds.ari_user,
        "ari_password": creds.ari_password,
        "ami_user": creds.ami_user,
        "ami_password": creds.ami_password,
        "app": a.app,
    }
    for key, value in values.items():
        if not value or _UNSAFE_VALUE.search(value):
            shown = "***" if "password" in key else repr(value)
            raise AsteriskError(f"asterisk.{key}: {shown} cannot go into Asterisk's configuration "
                                "(empty, or contains whitespace, quotes, ';', '[', ']' or '\\')")
    return values


def render(text: str, values: Mapping[str, str], *, name: str = "template") -> str:
    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise AsteriskError(f"{name}: unknown placeholder {{{{{key}}}}}")
        return values[key]

    return _PLACEHOLDER.sub(sub, text)


def render_config(template_dir: Path, values: Mapping[str, str],
                  extra_files: Mapping[str, str] | None = None) -> dict[str, str]:
    """File name -> rendered text for every template (``*.conf``) plus the extra files."""
    # Bytes that are not UTF-8 (Debian's sample configs have Latin-1) pass through untouched.
    files = {path.name: render(path.read_text("utf-8", "surrogateescape"), values, name=path.name)
             for path in sorted(template_dir.glob("*.conf"))}
    if "asterisk.conf" not in files:
        raise AsteriskError(f"{template_dir}: no asterisk.conf template")
    for name, text in (extra_files or {}).items():
        check_extra_name(name)
        if name in files and name not in SEED_ONLY:
            raise AsteriskError(f"extra file {name!r} would replace the base configuration")
        files[name] = render(text, values, name=name)
    return files


def check_extra_name(name: str) -> None:
    """Extra files go into the etc directory beside the base configuration: plain ``*.conf`` names only."""
    if "/" in name or name.startswith(".") or not name.endswith(".conf"):
        raise AsteriskError(f"extra file {name!r}: a plain *.conf file name is required")


def write_config(etc_dir: Path, files: Mapping[str, str], extra_names: set[str]) -> None:
    """Write the rendered files; seed-only files only when missing; drop stale extras."""
    etc_dir.mkdir(parents=True, exist_ok=True)
    marker = etc_dir / ".controlplane-extra"
    previous = set(marker.read_text().split()) if marker.exists() else set()
    for name in previous - extra_names:
        (etc_dir / name).unlink(missing_ok=True)
    for name, text in files.items():
        target = etc_dir / name
        # A seed file the caller supplies (the daemon's real DSN) always wins over the seed.
        if name in SEED_ONLY and name not in extra_names and target.exists():
            continue
        tmp = target.with_name(f".{name}.tmp")
        # Credentials are inside: nobody but root reads the instance configuration.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as out:
            out.write(text)
        os.replace(tmp, target)
    marker.write_text("".join(f"{n}\n" for n in sorted(extra_names)))

