"""A daemon restarted after a crash adopts the embedded PostgreSQL its predecessor left
running and stops it on exit; a server somebody else runs is never stopped."""

from __future__ import annotations

import subprocess
from pathlib import Path

from controlplane.config import Config
from controlplane.db.database import OWNER_FILE, open_database, running_dsn
from controlplane.db.embedded import EmbeddedPostgres


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


async def test_a_server_left_by_a_dead_daemon_is_adopted_and_stopped(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path))
    server = EmbeddedPostgres(tmp_path / "postgres")
    try:
        # Somebody else's server (no owner file): used, never stopped.
        assert server.start()
        assert running_dsn(config) is not None
        other = await open_database(config, claim=True)
        assert not other.started_here
        other.stop()
        assert server.running_port() is not None

        # The previous daemon crashed: its pid is gone, the server still runs.
        (server.data_dir / OWNER_FILE).write_text(f"{_dead_pid()}\n")
        adopted = await open_database(config, claim=True)
        assert adopted.started_here
        adopted.stop()
        assert server.running_port() is None and running_dsn(config) is None
        assert not (server.data_dir / OWNER_FILE).exists()
    finally:
        server.stop()
