"""Secrets generated once per install and kept, mode 0600, in the data directory."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path


def install_secret(data_path: Path, name: str, nbytes: int = 24) -> str:
    """The secret called ``name``, created on first use and reused afterwards."""
    path = data_path / "secrets" / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(nbytes))
        # link() never replaces: when two processes race, both keep the first written.
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return path.read_text().strip()
