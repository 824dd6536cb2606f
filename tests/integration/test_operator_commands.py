"""The operator's commands against a real embedded PostgreSQL and the daemon itself:
backup, drop, restore, then the daemon serves the same tenants; dsn, partners, wallet
adjust, platform-token. No Asterisk (asterisk.run: external, nothing listening): the RPC
and the database are what these commands concern."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import yaml

from controlplane.db.embedded import EmbeddedPostgres

TOKEN = "svc-operator-test"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    port = _port()
    path = tmp_path / "controlplane.yaml"
    path.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "var"), "http": {"port": port, "service_token": TOKEN},
        "asterisk": {"run": "external", "host": "127.0.0.1", "http_port": _port(), "ami_port": _port()},
        "limits": {"agi_port": _port()}, "logging": {"level": "warning"}}))
    try:
        yield path, port
    finally:
        EmbeddedPostgres(tmp_path / "var" / "postgres").stop()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    return subprocess.run([sys.executable, "-m", "controlplane", "-c", str(config), *args], capture_output=True,
                          text=True, timeout=180, env=env, cwd=config.parent)


def request(port: int, method: str, path: str, body: object | None = None,
            partner: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    if partner:
        headers["X-Partner-Id"] = partner
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class Serving:
    def __init__(self, config: Path, port: int) -> None:
        self.log = (config.parent / "daemon.log").open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
        self.proc = subprocess.Popen([sys.executable, "-m", "controlplane", "-c", str(config), "serve"],
                                     cwd=config.parent, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.config, deadline = config, time.monotonic() + 90
        while True:
            assert self.proc.poll() is None, self.tail()
            assert time.monotonic() < deadline, self.tail()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)

    def tail(self) -> str:
        return (self.config.parent / "daemon.log").read_text()[-3000:]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0, self.tail()
        self.log.close()


def tenants(port: int, partner: str) -> list[tuple[str, str]]:
    status, body = request(port, "GET", "/v1/tenants", partner=partner)
    assert status == 200, body
    return sorted((str(t["id"]), str(t["name"])) for t in body["items"])  # type: ignore[union-attr]


def test_backup_drop_restore_then_the_daemon_serves_the_same_tenants(setup: tuple[Path, int]) -> None:
    config, port = setup
    daemon = Serving(config, port)
    try:
        status, partner = request(port, "POST", "/v1/partners", {"name": "Ops Partner", "tier": "BUSINESS"})
        assert status == 201, partner
        partner_id = str(partner["id"])
        for name in ("Acme", "Globex"):
            status, body = request(port, "POST", "/v1/tenants", {"name": name, "billing_email": "a@b.co"},
                                   partner=partner_id)
            assert status == 201, body
        before = tenants(port, partner_id)
        dsn = cli(config, "db", "dsn")
        assert dsn.returncode == 0 and dsn.stdout.startswith("postgresql://"), dsn.stderr
        refused = cli(config, "db", "restore", str(config))  # any file: the running daemon is checked first
        assert refused.returncode == 1 and "is running" in refused.stderr, refused.stderr
    finally:
        daemon.stop()

    dump = config.parent / "backup.dump"
    done = cli(config, "db", "backup", str(dump))
    assert done.returncode == 0, done.stderr
    assert dump.stat().st_size > 0 and dump.stat().st_mode & 0o077 == 0

    async def drop() -> None:
        server = EmbeddedPostgres(config.parent / "var" / "postgres")
        server.start()
        conn = await asyncpg.connect(server.dsn())
        try:
            await conn.execute('DROP DATABASE "controlplane"')
        finally:
            await conn.close()
            server.stop()

    asyncio.run(drop())
    loaded = cli(config, "db", "restore", str(dump))
    assert loaded.returncode == 0, loaded.stderr
    assert "1 partners, 2 tenants" in loaded.stdout
    again = cli(config, "db", "restore", str(dump))
    assert again.returncode == 1 and "--replace" in again.stderr
    replaced = cli(config, "db", "restore", "--replace", str(dump))
    assert replaced.returncode == 0, replaced.stderr

    daemon = Serving(config, port)
    try:
        assert tenants(port, partner_id) == before
    finally:
        daemon.stop()

    listing = cli(config, "partners")
    assert listing.returncode == 0, listing.stderr
    assert partner_id in listing.stdout and "Ops Partner" in listing.stdout
    credit = cli(config, "wallet", "adjust", partner_id, "2500000", "--reason", "goodwill", "--reference", "t-1")
    assert credit.returncode == 0 and "balance 2500000 micros" in credit.stdout, credit.stderr
    repeat = cli(config, "wallet", "adjust", partner_id, "2500000", "--reason", "goodwill", "--reference", "t-1")
    assert "already posted" in repeat.stdout and "balance 2500000 micros" in repeat.stdout, repeat.stderr
    assert "2500000" in cli(config, "partners").stdout
    first = cli(config, "platform-token")
    assert first.returncode == 0 and first.stdout.strip() == cli(config, "platform-token").stdout.strip()
    rotated = cli(config, "platform-token", "--rotate")
    assert rotated.stdout.strip() and rotated.stdout.strip() != first.stdout.strip()
