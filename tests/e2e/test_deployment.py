"""Every way Asterisk is started gets the whole configuration (docs/deployment.md).

1. Asterisk killed (SIGKILL) under a running daemon and started again with the real
   ``controlplane asterisk up`` (a subprocess, the same config file, the daemon's
   embedded PostgreSQL found in the data directory): within 15 s the existing phones
   register, an internal and an outbound call connect and 911 reaches the emergency
   UAS; the daemon is never restarted.
2. External mode with ``asterisk.config_dir``: the daemon writes the configuration
   into the shared instance directory before Asterisk exists; an Asterisk booted from
   that directory (nothing rendered by the runner) registers a phone and connects a
   call, also for a tenant created after it started (the dialplan kept up to date);
   ``controlplane asterisk config --out`` renders the same files.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import msgspec
import pytest
import yaml
from harness import free_port, free_udp_tcp_port, require_real_asterisk, rtp_range
from wallet_support import active_funded
from tenants_e2e import answer_scenario, call_scenario, register_scenario, sipp_as, sipp_failure, uas_scenario

from controlplane.asterisk.runner import LocalRunner
from controlplane.profiles.http import profile_services
from controlplane.profiles.models import AssignmentBody
from controlplane.config import AsteriskRunMode, Config, load_config
from controlplane.daemon import Daemon
from controlplane.tenants.http import numbering_services, tenant_services
from controlplane.tenants.models import ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate
from provisioning.names import internal_context

pytestmark = [pytest.mark.e2e]
CONTROLPLANE = Path(sys.executable).parent / "controlplane"
TOLL_FREE = "18005550199"
WITHIN = 15.0


def write_config(path: Path, data_dir: Path, instance: str, **sections: Any) -> Config:
    rtp_start, rtp_end = rtp_range()
    asterisk = {"run": "local", "instance": instance, "sip_port": free_udp_tcp_port(), "http_port": free_port(),
                "ami_port": free_port(), "rtp_start": rtp_start, "rtp_end": rtp_end, "boot_timeout": 60}
    asterisk.update(sections.pop("asterisk", {}))
    body = {"data_dir": str(data_dir), "http": {"port": free_port(), "service_token": "t"},
            "asterisk": asterisk, "limits": {"agi_port": free_port()},
            "calls": {"reconcile_seconds": 1, "settle_seconds": 1}, **sections}
    path.write_text(yaml.safe_dump(body))
    return load_config(path, environ={})


@dataclass
class Phones:
    sip: SimpleNamespace
    passwords: dict[str, str]
    procs: list[subprocess.Popen[bytes]]

    def run(self, scenario: str, service: str, user: str | None = None, *, port: int | None = None,
            background: bool = False) -> Any:
        return sipp_as(self.sip, self.procs, self.passwords, scenario, service, user=user, port=port,
                       background=background, timeout="30s")

    async def register(self, user: str, port: int) -> None:
        done = await asyncio.to_thread(self.run, register_scenario(), user, user, port=port)
        assert done.returncode == 0, f"{user} did not register: {done.stderr.decode()[-1500:]}"

    def uas(self, port: int, service: str = "uas") -> subprocess.Popen[bytes]:
        return self.run(uas_scenario(invite_timeout_ms=30000, bye_timeout_ms=30000), service, port=port,
                        background=True)

    async def call(self, caller: str, number: str, answerer: subprocess.Popen[bytes],
                   retry_503_until: float = 0.0) -> None:
        """A call answered by ``answerer``. Until ``retry_503_until`` (monotonic) a 503 is tried
        again: after a crash Asterisk may have lost admission's astdb key (astdb is committed
        lazily) and refuses billable calls, fail-closed, until the daemon republishes it."""
        while True:
            done = await asyncio.to_thread(self.run, call_scenario(auth=True, hold_ms=300), number, caller)
            refused = b"SIP/2.0 503" in done.stderr
            if done.returncode == 0 or not refused or time.monotonic() >= retry_503_until:
                break
            await asyncio.sleep(0.3)
        assert done.returncode == 0, f"{caller} -> {number}: {done.stderr.decode()[-1500:]}"
        code = await asyncio.to_thread(answerer.wait, 30)
        assert code == 0, sipp_failure(answerer)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def readyz(port: int) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as response:
        return response.status, await response.json()


async def tenant_with_phones(daemon: Daemon, name: str, numbers: tuple[str, ...]) -> tuple[str, str, dict[str, str]]:
    assert daemon.http is not None
    app = daemon.http.app
    tenants, numbering = app[tenant_services], app[numbering_services]
    partner = (await tenants.create_partner(PartnerCreate(name=f"{name} partner", tier=PartnerTier.BUSINESS))).id
    tenant = (await tenants.create_tenant(partner, TenantCreate(name=name, billing_email="a@b.co",
                                                                sip_prefix=name))).id
    passwords = {}
    for number in numbers:
        created = await numbering.create_extension(partner, tenant, ExtensionCreate(number=number,
                                                                                  display_name="U"))
        passwords[created.sip_username] = created.secrets.sip_password
    await tenants.applier.wait_applied(10)
    return partner, tenant, passwords


# ---------------------------------------------------------------- 1. kill, then `asterisk up`

@pytest.fixture
async def local_daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, Path, dict[str, int]]]:
    require_real_asterisk()
    ports = {"carrier": free_port(socket.SOCK_DGRAM), "emergency": free_port(socket.SOCK_DGRAM)}
    path = tmp_path / "controlplane.yaml"
    # No database.dsn: the daemon's embedded PostgreSQL, which `asterisk up` must find on its own.
    config = write_config(path, tmp_path / "data", f"deploy{os.getpid()}",
                          carrier={"host": "127.0.0.1", "port": ports["carrier"]},
                          emergency={"trunk_host": "127.0.0.1", "trunk_port": ports["emergency"]})
    daemon = Daemon(config)
    try:
        await daemon.start()
        yield daemon, path, ports
    finally:
        await daemon.stop()
        shutil.rmtree(LocalRunner(config).instance_dir, ignore_errors=True)


async def test_asterisk_up_after_a_kill_restores_phones_trunks_and_dialplan(
        local_daemon: tuple[Daemon, Path, dict[str, int]]) -> None:
    daemon, path, ports = local_daemon
    config = daemon.config
    assert daemon.http is not None and daemon.runner_started
    partner, tenant, passwords = await tenant_with_phones(daemon, "acme", ("101", "102"))
    await daemon.http.app[profile_services].assign(partner, tenant, AssignmentBody(
        per_minute_micros=50_000, toll_free_per_minute_micros=30_000, min_seconds=60, increment_seconds=6))
    assert daemon.pool is not None
    await active_funded(daemon.pool, partner, 100_000_000)
    phones = Phones(SimpleNamespace(sip_port=config.asterisk.sip_port), passwords, [])
    port101, port102 = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    try:
        await asyncio.gather(phones.register("acme_101", port101), phones.register("acme_102", port102))

        runner = LocalRunner(config)
        killed = runner.status().pid
        runner.kill()
        assert runner.status().pid is None
        started = time.monotonic()
        up = await asyncio.to_thread(
            subprocess.run, [str(CONTROLPLANE), "-c", str(path), "asterisk", "up"], capture_output=True,
            text=True, timeout=90, env={**os.environ, "CONTROLPLANE_CONFIG": str(path)})
        assert up.returncode == 0, up.stdout + up.stderr
        assert runner.status().pid not in (None, killed)
        booted = time.monotonic() - started

        # The existing phones register again (digest auth against the realtime tables).
        await asyncio.gather(phones.register("acme_101", port101), phones.register("acme_102", port102))
        registered = time.monotonic() - started
        # Internal, outbound (carrier trunk) and 911 (emergency trunk), at once.
        answer = phones.run(answer_scenario(30000), "acme_101", port=port101, background=True)
        carrier, emergency = phones.uas(ports["carrier"]), phones.uas(ports["emergency"])
        await asyncio.gather(phones.call("acme_102", "101", answer),
                             phones.call("acme_102", TOLL_FREE, carrier, retry_503_until=started + WITHIN),
                             phones.call("acme_102", "911", emergency))
        connected = time.monotonic() - started
        print(f"\nasterisk up: booted {booted:.2f} s, phones registered {registered:.2f} s, "
              f"internal+outbound+911 connected {connected:.2f} s after the command")
        assert connected < WITHIN, f"{connected:.1f} s"
        # The same daemon (never restarted) is connected again, ready.
        while (ready := await readyz(config.http.port))[0] != 200:
            assert time.monotonic() - started < WITHIN, ready
            await asyncio.sleep(0.2)
        print(f"daemon ready again {time.monotonic() - started:.2f} s after the command")
        assert ready[1]["checks"]["emergency"]["ok"]
    finally:
        phones.close()


# ---------------------------------------------------------------- 2. external mode, config_dir

@pytest.fixture
async def external_daemon(tmp_path: Path, database_dsn: str
                          ) -> AsyncIterator[tuple[list[Daemon], Path, LocalRunner]]:
    require_real_asterisk()
    instance = f"ext{os.getpid()}"
    local_dir = LocalRunner(Config(asterisk=msgspec.structs.replace(Config().asterisk, instance=instance)))
    shared = local_dir.instance_dir  # what Asterisk (in the chroot) sees as /srv/controlplane/<instance>
    path = tmp_path / "controlplane.yaml"
    config = write_config(path, tmp_path / "data", instance, database={"dsn": database_dsn},
                          asterisk={"run": "external", "config_dir": str(shared)},
                          emergency={"trunk_host": "127.0.0.1", "trunk_port": free_port(socket.SOCK_DGRAM)})
    # Asterisk runs from the directory the daemon writes: the local runner only boots it.
    local = msgspec.structs.replace(config, asterisk=msgspec.structs.replace(
        config.asterisk, run=AsteriskRunMode.LOCAL, config_dir=None))
    asterisk = LocalRunner(local, write_config=False)
    daemons = [Daemon(config)]  # the test starts a second one; every one is stopped
    try:
        await daemons[0].start()
        yield daemons, path, asterisk
    finally:
        for daemon in daemons:
            await daemon.stop()
        asterisk.down()
        shutil.rmtree(shared, ignore_errors=True)


async def test_external_mode_writes_the_whole_configuration_and_asterisk_boots_from_it(
        external_daemon: tuple[list[Daemon], Path, LocalRunner], tmp_path: Path) -> None:
    daemons, path, asterisk = external_daemon
    daemon = daemons[0]
    etc = asterisk.instance_dir / "etc"
    # Written at start, before any Asterisk exists.
    assert asterisk.status().pid is None
    names = {p.name for p in etc.iterdir()}
    assert {"asterisk.conf", "sorcery.conf", "extconfig.conf", "res_pgsql.conf", "cdr_pgsql.conf",
            "pjsip_extra.conf", "rtp.conf", "extensions_tenants.conf"} <= names
    assert "/nonexistent" not in (etc / "res_pgsql.conf").read_text()
    assert {p.name for p in asterisk.instance_dir.iterdir()} >= {"etc", "run", "log", "spool", "db"}

    # `asterisk config --out` renders the same files (the one function).
    out = tmp_path / "rendered"
    done = subprocess.run([str(CONTROLPLANE), "-c", str(path), "asterisk", "config", "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert {p.name: p.read_text() for p in (out / "etc").glob("*.conf")} == \
        {p.name: p.read_text() for p in etc.glob("*.conf")}

    await asyncio.to_thread(asterisk.up)
    deadline = time.monotonic() + 15
    while (await readyz(daemon.config.http.port))[0] != 200:
        assert time.monotonic() < deadline, "daemon never connected to the external Asterisk"
        await asyncio.sleep(0.2)
    # A tenant created after Asterisk started: its dialplan reaches the shared directory (and is reloaded).
    _, _, passwords = await tenant_with_phones(daemon, "beta", ("201", "202"))
    assert f"[{internal_context('beta')}]" in (etc / "extensions_tenants.conf").read_text()
    phones = Phones(SimpleNamespace(sip_port=daemon.config.asterisk.sip_port), passwords, [])
    port201 = free_port(socket.SOCK_DGRAM)
    try:
        await phones.register("beta_201", port201)
        await phones.register("beta_202", free_port(socket.SOCK_DGRAM))
        answer = phones.run(answer_scenario(30000), "beta_201", port=port201, background=True)
        await phones.call("beta_202", "201", answer)
    finally:
        phones.close()

    # The daemon restarted with another emergency trunk under the running Asterisk: it
    # rewrites pjsip_extra.conf and has Asterisk reload PJSIP over AMI.
    await daemon.stop()
    moved = free_port(socket.SOCK_DGRAM)
    daemons.append(Daemon(msgspec.structs.replace(daemon.config, emergency=msgspec.structs.replace(
        daemon.config.emergency, trunk_port=moved))))
    await daemons[-1].start()
    assert f"contact = sip:127.0.0.1:{moved}" in (etc / "pjsip_extra.conf").read_text()
    deadline = time.monotonic() + 15
    while f"127.0.0.1:{moved}" not in await asyncio.to_thread(asterisk.cli, "pjsip show aor cp-emergency"):
        assert time.monotonic() < deadline, "PJSIP was not reloaded"
        await asyncio.sleep(0.3)
