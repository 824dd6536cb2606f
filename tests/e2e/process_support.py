"""A node's daemon as a separate OS process (``python -m controlplane -c <file> serve``) beside a
real Asterisk the test boots: what a kill -9 of a node must hit (issue 19). The in-process
``harness.daemon_beside`` cannot be killed that way: its HTTP listener and Asterisk links live on
in the test's own process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import yaml
from harness import ami_client, asterisk_instance, credentials, daemon_files, external

from controlplane.asterisk.ami import AmiClient
from controlplane.asterisk.runner import AsteriskRunner
from controlplane.config import Config
from controlplane.db.lease import node_lease
from controlplane.tenants.applier import AmiControl, Applier
from controlplane.tenants.plugin import DIALPLAN_FILE, _applier

READY_DEADLINE_S = 90.0  # a deadline, not a speed target: the machine is shared


@dataclass
class DaemonProcess:
    """Node Asterisk (the test's runner) and its daemon in a process of its own."""

    config: Config
    runner: AsteriskRunner
    ami: AmiClient  # the test's own session
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def etc_dir(self) -> Path:
        assert self.runner.etc_dir is not None
        return Path(self.runner.etc_dir)

    def kill(self) -> None:
        """kill -9 of the daemon: nothing released, its heartbeat left to expire."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def process_config_file(config: Config, path: Path) -> Path:
    """``config`` as the YAML file the process reads: Asterisk external (the test runs it) with the
    instance's credentials spelled out, so both sides agree without the keystore's say."""
    creds = credentials(config)
    ext = external(config)
    raw: dict[str, Any] = msgspec.to_builtins(ext)
    raw["asterisk"].update(ari_password=creds.ari_password, ami_password=creds.ami_password,
                           ari_user=creds.ari_user, ami_user=creds.ami_user)
    path.write_text(yaml.safe_dump(raw))
    return path


def node_applier(node: DaemonProcess, pool: asyncpg.Pool) -> Applier:
    """The tenants dialplan writer for the node's own file, built as its daemon builds it (trunk,
    admission step): an external Asterisk without config_dir gets no file from its daemon."""
    return _applier(node.config, pool, node.etc_dir / DIALPLAN_FILE, AmiControl(node.ami))


async def _ready(config: Config, pool: asyncpg.Pool) -> bool:
    """Database, ARI and AMI up in the process, and its node heartbeat taken."""
    try:
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{config.http.port}/readyz") as response:
            body = await response.json(content_type=None)
    except aiohttp.ClientError:
        return False
    checks = body.get("checks", {})
    if not all(checks.get(name, {}).get("ok") for name in ("database", "ari", "ami")):
        return False
    return bool(await pool.fetchval("SELECT count(*) FROM leases WHERE name = $1 AND expires_at > now()",
                                    node_lease(config.node.id)))


@contextlib.asynccontextmanager
async def daemon_process(config: Config, dsn: str, pool: asyncpg.Pool) -> AsyncIterator[DaemonProcess]:
    """Boot Asterisk with the daemon's files, then ``controlplane serve`` in a process beside it;
    on exit kill the process (if a test did not) and stop Asterisk."""
    extra = await daemon_files(config, dsn)
    data = Path(config.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    with asterisk_instance(config, extra) as runner:
        ami = await ami_client(config)
        path = process_config_file(config, data / "controlplane.yaml")
        log_path = data / "daemon.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "controlplane", "-c", str(path), "serve"],
                                    cwd=data, stdout=log, stderr=subprocess.STDOUT)
        running = DaemonProcess(config, runner, ami, proc, log_path)
        try:
            deadline = time.monotonic() + READY_DEADLINE_S
            while not await _ready(config, pool):
                assert proc.poll() is None, f"the daemon exited {proc.returncode}\n{running.log_tail()}"
                assert time.monotonic() < deadline, f"the daemon not ready\n{running.log_tail()}"
                await asyncio.sleep(0.3)
            yield running
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(proc.wait, 30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            await ami.close()
