"""ARI and AMI credentials: from config when set, else generated once per install.

Generated secrets live in ``<data_dir>/asterisk/credentials.json`` (mode 0600)
and are reused by every later start, so the daemon, the CLI and the rendered
Asterisk configuration always agree.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from controlplane.config import Config

_FILE = "credentials.json"
_GENERATED = ("ari_password", "ami_password")


@dataclass(frozen=True)
class AsteriskCredentials:
    ari_user: str
    ari_password: str
    ami_user: str
    ami_password: str

    def __repr__(self) -> str:  # never print secrets in logs or test output
        return f"AsteriskCredentials(ari_user={self.ari_user!r}, ami_user={self.ami_user!r})"


def credentials_path(cfg: Config) -> Path:
    return cfg.data_path / "asterisk" / _FILE


def resolve_credentials(cfg: Config) -> AsteriskCredentials:
    """Configured values win; missing passwords come from (or go to) the data directory."""
    a = cfg.asterisk
    ari_password, ami_password = a.ari_password, a.ami_password
    if ari_password is None or ami_password is None:
        stored = _load_or_create(credentials_path(cfg))
        ari_password = ari_password if ari_password is not None else stored["ari_password"]
        ami_password = ami_password if ami_password is not None else stored["ami_password"]
    return AsteriskCredentials(a.ari_user, ari_password, a.ami_user, ami_password)


def _load_or_create(path: Path) -> dict[str, str]:
    existing = _read(path)
    if existing is not None:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = {key: secrets.token_urlsafe(24) for key in _GENERATED}
    tmp = path.with_name(f".{_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(fresh, out)
            out.write("\n")
        # link() fails if another process created the file first: theirs wins,
        # so concurrent first starts (daemon + CLI) still agree on one secret.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    stored = _read(path)
    if stored is None:
        raise RuntimeError(f"{path}: could not store generated Asterisk credentials")
    return stored


def _read(path: Path) -> dict[str, str] | None:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"{path}: unreadable Asterisk credentials ({exc}); "
                           "remove it to regenerate") from None
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) and raw[k] for k in _GENERATED):
        raise RuntimeError(f"{path}: missing {', '.join(_GENERATED)}; remove it to regenerate")
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return {k: raw[k] for k in _GENERATED}
