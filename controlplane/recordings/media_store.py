"""The local ``MediaStore``: tenant audio in a directory Asterisk also sees.

Layout ``<root>/<tenant_id>/<kind>/<name>.wav``. The root defaults to ``spool/media`` of the
Asterisk instance directory, which every runner shares with Asterisk (local: inside the
chroot; container: bind-mounted; external: ``asterisk.config_dir``), so a file written here
is playable at once and a MixMonitor file written by Asterisk is readable here. The two
sides see the directory under different paths: ``playback_name`` gives Asterisk's.
Writes go to a temporary file and are renamed into place: Asterisk never plays half a file.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from controlplane.config import AsteriskRunMode, Config
from controlplane.shared.media import MediaKey, MediaKind

__all__ = ["InvalidMediaKey", "LocalMediaStore", "MediaDirs", "instance_dir", "media_dirs"]

# tenant ids are ours (``ten_<hex>``; tests also use UUIDs): the HTTP layer's id shape
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_NAME = re.compile(r"[0-9a-z][0-9a-z-]{0,99}")
# Asterisk's side goes into dialplan arguments: nothing that ends or splits one.
_SAFE_DIR = re.compile(r"/[A-Za-z0-9._/-]*")


class InvalidMediaKey(ValueError):
    """A key that cannot name a file (a bug in the caller: keys are built from our ids)."""


@dataclass(frozen=True, slots=True)
class MediaDirs:
    host: Path  # where the daemon reads and writes
    asterisk: PurePosixPath  # the same directory as Asterisk sees it
    # Asterisk's spool directory on the daemon's side (voicemail boxes live in its
    # voicemail/); None when the instance directory is not shared with the daemon.
    spool: Path | None = None


def instance_dir(config: Config) -> Path | None:
    """The Asterisk instance directory as the daemon sees it (None: not shared with us)."""
    a = config.asterisk
    if a.run is AsteriskRunMode.EXTERNAL:
        return Path(a.config_dir).expanduser().resolve() if a.config_dir else None
    from controlplane.asterisk.runner import runner_for

    etc = runner_for(config).etc_dir
    return Path(etc).parent if etc is not None else None


def media_dirs(config: Config, instance: Path | None = None) -> MediaDirs:
    """The media root on both sides, from ``media.*`` or the Asterisk instance directory."""
    m, a = config.media, config.asterisk
    instance = instance if instance is not None else instance_dir(config)
    inner = PurePosixPath("/srv/controlplane") / a.instance / "spool" / "media"
    if m.dir is not None:
        host = Path(m.dir).expanduser().resolve()
        seen = PurePosixPath(m.asterisk_dir) if m.asterisk_dir else PurePosixPath(str(host))
    elif instance is not None:
        host = instance / "spool" / "media"
        seen = PurePosixPath(m.asterisk_dir) if m.asterisk_dir else inner
    else:  # an external Asterisk that shares nothing with us: set media.dir and media.asterisk_dir
        host = config.data_path / "asterisk-media"
        seen = PurePosixPath(m.asterisk_dir) if m.asterisk_dir else PurePosixPath(str(host))
    if not _SAFE_DIR.fullmatch(str(seen)):
        raise ValueError(f"media.asterisk_dir: {str(seen)!r}: an absolute path of letters, digits and ._/-")
    return MediaDirs(host, seen, instance / "spool" if instance is not None else None)


def _parts(key: MediaKey) -> tuple[str, str, str]:
    if not _TENANT.fullmatch(key.tenant_id) or not _NAME.fullmatch(key.name) or not isinstance(key.kind, MediaKind):
        raise InvalidMediaKey(f"media key {key!r}: tenant id, kind or name of the wrong shape")
    return key.tenant_id, key.kind.value, key.name


class LocalMediaStore:
    """``MediaStore`` over a local directory (see the module docstring)."""

    def __init__(self, dirs: MediaDirs) -> None:
        self.dirs = dirs

    def path(self, key: MediaKey) -> Path:
        tenant, kind, name = _parts(key)
        return self.dirs.host / tenant / kind / f"{name}.wav"

    def playback_name(self, key: MediaKey) -> str:
        tenant, kind, name = _parts(key)
        return str(self.dirs.asterisk / tenant / kind / name)

    def recording_target(self, key: MediaKey) -> str:
        """What MixMonitor/Record write to (Asterisk's path, with the extension)."""
        return f"{self.playback_name(key)}.wav"

    def ensure_dir(self, tenant_id: str, kind: MediaKind) -> None:
        """Asterisk does not create a MixMonitor file's directory: make it beforehand."""
        self.path(MediaKey(tenant_id, kind, "x")).parent.mkdir(parents=True, exist_ok=True)

    async def put(self, key: MediaKey, data: bytes) -> None:
        await asyncio.to_thread(self._put, self.path(key), data)

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.chmod(0o644)  # Asterisk may run as another user in a container
        tmp.replace(path)

    async def get(self, key: MediaKey) -> bytes | None:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, key: MediaKey) -> None:
        path = self.path(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def tenant_dirs(self) -> list[str]:
        """The tenants that have files (the recordings sweep purges those no longer in the database)."""
        def listed() -> list[str]:
            root = self.dirs.host
            return sorted(p.name for p in root.iterdir() if p.is_dir() and _TENANT.fullmatch(p.name)) \
                if root.is_dir() else []

        return await asyncio.to_thread(listed)

    async def purge_tenant(self, tenant_id: str) -> int:
        if not _TENANT.fullmatch(tenant_id):
            raise InvalidMediaKey(f"tenant id {tenant_id!r} of the wrong shape")
        root = self.dirs.host / tenant_id

        def purge() -> int:
            if not root.is_dir():
                return 0
            count = sum(1 for p in root.rglob("*") if p.is_file())
            shutil.rmtree(root)
            return count

        return await asyncio.to_thread(purge)
