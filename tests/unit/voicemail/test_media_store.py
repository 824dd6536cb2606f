"""controlplane.recordings.media_store: keys map to one file each, on both sides of the chroot."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from controlplane.config import AsteriskConfig, AsteriskRunMode, Config, MediaConfig
from controlplane.recordings.media_store import InvalidMediaKey, LocalMediaStore, MediaDirs, media_dirs
from controlplane.shared.media import MediaKey, MediaKind

TENANT = "ten_0123456789abcdef"


async def test_put_get_delete_purge(tmp_path: Path) -> None:
    store = LocalMediaStore(MediaDirs(tmp_path / "media", PurePosixPath("/srv/controlplane/x/spool/media")))
    key = MediaKey(TENANT, MediaKind.PROMPT, "welcome-1")
    await store.put(key, b"RIFF1")
    await store.put(key, b"RIFF2")  # replaces
    assert await store.get(key) == b"RIFF2"
    assert store.playback_name(key) == f"/srv/controlplane/x/spool/media/{TENANT}/prompt/welcome-1"
    await store.put(MediaKey(TENANT, MediaKind.RECORDING, "1796119200-1"), b"x")
    assert await store.tenant_dirs() == [TENANT]
    await store.delete(key)
    assert await store.get(key) is None
    assert await store.purge_tenant(TENANT) == 1
    assert await store.tenant_dirs() == []


@pytest.mark.parametrize("key", [
    MediaKey("../etc", MediaKind.PROMPT, "a"), MediaKey(TENANT, MediaKind.PROMPT, "../a"),
    MediaKey(TENANT, MediaKind.PROMPT, "A"), MediaKey(TENANT, MediaKind.PROMPT, "a,b"),
    MediaKey(TENANT, MediaKind.PROMPT, ""), MediaKey("ten;1", MediaKind.PROMPT, "a"),
])
def test_keys_of_the_wrong_shape(tmp_path: Path, key: MediaKey) -> None:
    store = LocalMediaStore(MediaDirs(tmp_path, PurePosixPath("/m")))
    with pytest.raises(InvalidMediaKey):
        store.playback_name(key)


def test_dirs_of_an_external_asterisk(tmp_path: Path) -> None:
    shared = Config(data_dir=str(tmp_path), asterisk=AsteriskConfig(
        run=AsteriskRunMode.EXTERNAL, config_dir=str(tmp_path / "inst"), instance="prod"))
    dirs = media_dirs(shared)
    assert dirs.host == tmp_path / "inst" / "spool" / "media"
    assert dirs.asterisk == PurePosixPath("/srv/controlplane/prod/spool/media")
    assert dirs.spool == tmp_path / "inst" / "spool"
    own = Config(data_dir=str(tmp_path), asterisk=AsteriskConfig(run=AsteriskRunMode.EXTERNAL),
                 media=MediaConfig(dir=str(tmp_path / "m"), asterisk_dir="/mnt/media"))
    assert media_dirs(own).asterisk == PurePosixPath("/mnt/media")
    with pytest.raises(ValueError):
        media_dirs(Config(data_dir=str(tmp_path), asterisk=AsteriskConfig(run=AsteriskRunMode.EXTERNAL),
                          media=MediaConfig(dir=str(tmp_path), asterisk_dir="/mnt/a,b")))
