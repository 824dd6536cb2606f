"""``controlplane edge render``: the edge's files from the database, accepted by Kamailio itself."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import asyncpg
from controlplane.asterisk.runner.kamailio import KamailioRunner, kamailio_dir
from controlplane.asterisk.runner.rootfs import default_rootfs
from controlplane.nodes import store
from controlplane.nodes.edge import Node


async def cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "controlplane", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, (out + err).decode()


async def test_edge_render_writes_a_configuration_kamailio_accepts(
        pool: asyncpg.Pool, database_dsn: str, tmp_path: Path) -> None:
    await store.upsert_node(pool, Node("node-a", 1, "10.0.0.11", 5060))
    await store.upsert_node(pool, Node("node-b", 2, "10.0.0.12", 5062))
    env = {**os.environ, "CONTROLPLANE_DATABASE__DSN": database_dsn, "CONTROLPLANE_DATA_DIR": str(tmp_path / "d")}
    out = tmp_path / "edge"
    code, said = await cli(env, "edge", "render", "--out", str(out), "--address", "127.0.0.5", "--carrier",
                           "192.0.2.7", "--work-dir", str(kamailio_dir("clitest")))
    assert code == 0, said
    cfg = (out / "etc" / "kamailio.cfg").read_text()
    assert "listen=udp:127.0.0.5:5060" in cfg and '$si == "192.0.2.7"' in cfg
    assert "2 sip:10.0.0.12:5062 0 100 node=node-b" in (out / "etc" / "dispatcher.list").read_text()
    assert (out / "etc" / "kamailio.cfg").stat().st_mode & 0o077 == 0
    # A value that could inject configuration is refused, nothing written.
    code, said = await cli(env, "edge", "render", "--out", str(tmp_path / "bad"), "--address", "127.0.0.5;x")
    assert code == 1 and "edge.address" in said and not (tmp_path / "bad").exists()
    rootfs = default_rootfs().resolve()
    if os.geteuid() != 0 or not (rootfs / "usr/sbin/kamailio").exists():
        return  # the parse check below needs the chroot; the rendering is checked above
    runner = KamailioRunner(rootfs, "clitest", "http://127.0.0.5:5071/RPC")
    try:
        runner.write({name: (out / "etc" / name).read_text() for name in ("kamailio.cfg", "dispatcher.list")})
        runner.check()
    finally:
        shutil.rmtree(runner.instance_dir, ignore_errors=True)
