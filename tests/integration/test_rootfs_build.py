"""A missing Asterisk root filesystem is built with progress lines the operator sees,
or, with no build script at hand (an installed wheel), refused with the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.asterisk.runner import AsteriskError, rootfs


def test_a_missing_rootfs_is_built_with_progress_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "build-rootfs.sh").write_text('echo "debootstrap: step 1"; sleep 0.5; '
                                            'echo "debootstrap: step 2"; mkdir -p "$1"; '
                                            'touch "$1/.controlplane-rootfs-ready"\n')
    monkeypatch.setenv("CONTROLPLANE_ASTERISK_RECIPE_DIR", str(recipe))
    monkeypatch.setattr(rootfs, "PROGRESS_SECONDS", 0.2)
    target = tmp_path / "cache" / "asterisk-rootfs"
    rootfs.ensure_rootfs(target, tmp_path / "build.log")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"controlplane: building the Asterisk root filesystem into {target}")
    assert any(line.startswith("controlplane: still building") and "debootstrap: step 1" in line for line in err)
    assert err[-1].startswith("controlplane: Asterisk root filesystem ready")
    assert (target / ".controlplane-rootfs-ready").exists()


def test_without_the_build_script_the_command_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_ASTERISK_RECIPE_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(AsteriskError) as info:
        rootfs.ensure_rootfs(tmp_path / "rootfs", tmp_path / "build.log")
    assert "bash asterisk/build-rootfs.sh" in str(info.value) and "\n" not in str(info.value)
