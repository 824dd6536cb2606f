"""Asterisk's configuration: the ``asterisk/etc`` templates, their ``{{placeholders}}``, the files written.

Every ``{{name}}`` is replaced (Asterisk's own ``${VAR}`` syntax is left alone).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.abc import Traversable
from importlib.resources import files
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
    """The ``asterisk/`` directory of the repository (Dockerfile, build script)."""
    env = os.environ.get("CONTROLPLANE_ASTERISK_RECIPE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[3] / "asterisk"


def base_templates() -> dict[str, str]:
    """``asterisk/etc/*.conf``, read as package data (``controlplane/asterisk/base_etc``), so an
    installed wheel has them; ``$CONTROLPLANE_ASTERISK_RECIPE_DIR/etc`` when that is set."""
    env = os.environ.get("CONTROLPLANE_ASTERISK_RECIPE_DIR")
    root: Traversable = Path(env).expanduser() / "etc" if env else files("controlplane.asterisk") / "base_etc"
    # Bytes that are not UTF-8 (Debian's sample configs have Latin-1) pass through untouched.
    found = {entry.name: entry.read_bytes().decode("utf-8", "surrogateescape")
             for entry in root.iterdir() if entry.name.endswith(".conf") and entry.is_file()}
    if "asterisk.conf" not in found:
        raise AsteriskError(f"{root}: no asterisk.conf template (the package data is missing)")
    return dict(sorted(found.items()))


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
        "rtp_start": str(a.rtp_start),
        "rtp_end": str(a.rtp_end),
    }
    if cfg.node.multi:
        # Several Asterisks on one database: uniqueids (hence linkedids, the call records' key) are
        # "<epoch>.<n>" per system and two nodes started in the same second collide; systemname
        # prefixes them with the node id (validated: config.NodeConfig). Single-node: unchanged.
        values["systemname"] = cfg.node.id
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


def render_config(templates: Path | Mapping[str, str], values: Mapping[str, str],
                  extra_files: Mapping[str, str] | None = None,
                  verbatim_files: Mapping[str, str] | None = None) -> dict[str, str]:
    """File name -> rendered text: every base template, then the extra files.

    ``extra_files`` get the placeholders filled (tests' own objects); ``verbatim_files``
    (the plugins', which carry database state) are taken as they are. Either may
    replace a seed file (``SEED_ONLY``), never another base file.
    """
    if isinstance(templates, Path):
        templates = {path.name: path.read_text("utf-8", "surrogateescape")
                     for path in sorted(templates.glob("*.conf"))}
    files = {name: render(text, values, name=name) for name, text in templates.items()}
    if "asterisk.conf" not in files:
        raise AsteriskError("no asterisk.conf template")
    if "systemname" in values:
        files["asterisk.conf"] = with_systemname(files["asterisk.conf"], values["systemname"])
    added = [(name, render(text, values, name=name)) for name, text in (extra_files or {}).items()]
    added += list((verbatim_files or {}).items())
    for name, text in added:
        check_extra_name(name)
        if name in templates and name not in SEED_ONLY:
            raise AsteriskError(f"extra file {name!r} would replace the base configuration")
        files[name] = text
    return files


def with_systemname(text: str, name: str) -> str:
    """asterisk.conf with ``systemname`` as the first option of ``[options]``."""
    head, found, rest = text.partition("[options]\n")
    if not found:
        return f"{text.rstrip()}\n\n[options]\nsystemname = {name}\n"
    return f"{head}[options]\nsystemname = {name}\n{rest}"


@dataclass(frozen=True)
class RenderedConfig:
    """A whole instance configuration: file name -> text.

    ``owned`` are the files beyond the base templates (removed once nobody supplies
    them); ``complete`` is False when some were left out (the database unknown), and
    then the ones written earlier are kept.
    """

    files: Mapping[str, str]
    owned: frozenset[str]
    complete: bool = True

    def write(self, etc_dir: Path) -> set[str]:
        """Write into ``etc_dir``; the names of the files that changed."""
        return write_config(etc_dir, self.files, set(self.owned), prune=self.complete)


def check_extra_name(name: str) -> None:
    """Extra files go into the etc directory beside the base configuration: plain ``*.conf`` names only."""
    if "/" in name or name.startswith(".") or not name.endswith(".conf"):
        raise AsteriskError(f"extra file {name!r}: a plain *.conf file name is required")


def write_config(etc_dir: Path, files: Mapping[str, str], extra_names: set[str], *,
                 prune: bool = True) -> set[str]:
    """Write the files whose content differs; return their names.

    A seed file nobody supplies (``SEED_ONLY`` and not in ``extra_names``) is written
    only when missing. Extra files written last time and not supplied now are
    removed when ``prune`` (a complete configuration); ``asterisk.conf`` goes last, so
    whoever waits for it finds the others in place.
    """
    etc_dir.mkdir(parents=True, exist_ok=True)
    marker = etc_dir / ".controlplane-extra"
    previous = set(marker.read_text().split()) if marker.exists() else set()
    changed: set[str] = set()
    if prune:
        for name in sorted(previous - extra_names):
            if (etc_dir / name).exists():
                (etc_dir / name).unlink()
                changed.add(name)
    for name in sorted(files, key=lambda n: n == "asterisk.conf"):
        target = etc_dir / name
        if name in SEED_ONLY and name not in extra_names and target.exists():
            continue
        text = files[name]
        try:
            if target.read_bytes() == text.encode("utf-8", "surrogateescape"):
                continue
        except OSError:
            pass
        tmp = target.with_name(f".{name}.tmp")
        # Credentials are inside: nobody but root reads the instance configuration.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as out:
            out.write(text)
        os.replace(tmp, target)
        changed.add(name)
    kept = extra_names if prune else extra_names | previous
    marker.write_text("".join(f"{n}\n" for n in sorted(kept)))
    return changed
