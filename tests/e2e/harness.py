"""What every end-to-end test needs: free loopback ports, a real Asterisk from the
project's runner (one instance per test module, beside any other), and SIPp."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import msgspec
import pytest

from controlplane.asterisk.ami import AmiClient
from controlplane.asterisk.credentials import AsteriskCredentials, resolve_credentials
from controlplane.asterisk.runner import AsteriskRunner, LocalRunner, runner_for
from controlplane.asterisk.configuration import merge_files
from controlplane.config import (AsteriskConfig, AsteriskRunMode, CallsConfig, CarrierConfig, Config,
                                 DatabaseConfig, EmergencyConfig, HttpConfig, LimitsConfig)
from controlplane.daemon import Daemon
from controlplane.plugin_list import PLUGINS
from controlplane.plugins import AsteriskSource
from controlplane.tenants.http import tenant_services
from controlplane.tenants.plugin import DIALPLAN_FILE

# An unauthenticated endpoint for SIPp calls from 127.0.0.1, into context `from-sipp`
# (define it with extensions_extra.conf) or any context given.
def sipp_endpoint(context: str = "controlplane-test") -> str:
    return (f"[sipp]\ntype = endpoint\ncontext = {context}\ndisallow = all\nallow = ulaw\n"
            "[sipp]\ntype = identify\nendpoint = sipp\nmatch = 127.0.0.1\n")


# Every port handed out in this process: a port is free when picked but bound later, by another
# process (SIPp, Asterisk, Kamailio), and SIPp binds its media port + 2 (video) too. A port (or
# a media block) is never handed out twice, so two of our picks cannot meet in that window.
_handed: set[int] = set()


def _ephemeral(kind: int, address: str) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def free_port(kind: int = socket.SOCK_STREAM, address: str = "127.0.0.1") -> int:
    """A port free on ``address`` now, never handed out before in this process."""
    for _ in range(100):
        port = _ephemeral(kind, address)
        if port not in _handed:
            _handed.add(port)
            return port
    raise RuntimeError("no port free that was not handed out already")


def _bindable(address: str, ports: range, kind: int) -> bool:
    socks = []
    try:
        for port in ports:
            sock = socket.socket(socket.AF_INET, kind)
            socks.append(sock)
            sock.bind((address, port))
        return True
    except OSError:
        return False
    finally:
        for sock in socks:
            sock.close()


def udp_bound(port: int) -> bool:
    """Whether a UDP socket is bound to ``port`` on this host (read from /proc: binding nothing,
    so never in the way of the process about to bind it)."""
    suffix = f":{port:04X}"
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(FileNotFoundError):
            if any(line.split()[1].endswith(suffix) for line in Path(table).read_text().splitlines()[1:]):
                return True
    return False


def until_bound(proc: subprocess.Popen[bytes], port: int, timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """``proc`` (a SIPp started in the background) once it listens on UDP ``port``: a call sent to
    it before then would find no phone (or carrier) there. Returns early if it exited."""
    deadline = time.monotonic() + timeout
    while not udp_bound(port) and proc.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"SIPp did not bind UDP port {port} within {timeout} s")
        time.sleep(0.005)
    return proc


def free_udp_tcp_port(address: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP (PJSIP and Kamailio bind both on the same port)."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM, address)
        if _bindable(address, range(port, port + 1), socket.SOCK_STREAM):
            return port
    raise RuntimeError("no port free for both UDP and TCP")


def free_media_port(address: str = "127.0.0.1") -> int:
    """SIPp's ``-mp``: an even UDP port with the next three free (RTP, RTCP, video, its RTCP), the
    four never handed out before in this process."""
    for _ in range(50):
        base = _ephemeral(socket.SOCK_DGRAM, address) & ~1
        block = range(base, base + 4)
        if not _handed.intersection(block) and _bindable(address, block, socket.SOCK_DGRAM):
            _handed.update(block)
            return base
    raise RuntimeError("no block of 4 UDP ports free")


RTP_SLOT = 400  # ports per test instance: 100 concurrent two-leg calls
# Load runs (bench/) take the production default range: 2,500 concurrent two-leg calls.
LOAD_RTP = (10000, 19999)
_rtp_slots = itertools.count()


def rtp_range() -> tuple[int, int]:
    """A small RTP range of its own for each instance (by process and order), so concurrent
    test runs and the developer's daemon do not compete for the same ports."""
    # Below 32768: Linux hands out ephemeral ports from there (SIPp's, the tests' own sockets).
    slot = (os.getpid() * 7 + next(_rtp_slots)) % ((32768 - 20000) // RTP_SLOT)
    start = 20000 + slot * RTP_SLOT
    return start, start + RTP_SLOT - 1


def make_config(data_dir: Path, *, instance: str, run: str | None = None,
                rtp: tuple[int, int] | None = None, **overrides: object) -> Config:
    """A config on free ports (``rtp``: the RTP range, else a small one of its own); the
    run mode follows $CONTROLPLANE_TEST_ASTERISK_RUN."""
    run = run or os.environ.get("CONTROLPLANE_TEST_ASTERISK_RUN", "auto")
    rtp_start, rtp_end = rtp or rtp_range()
    asterisk = AsteriskConfig(run=AsteriskRunMode(run), instance=instance, boot_timeout=60.0,
                              sip_port=free_udp_tcp_port(), http_port=free_port(), ami_port=free_port(),
                              rtp_start=rtp_start, rtp_end=rtp_end)
    return Config(data_dir=str(data_dir), asterisk=asterisk, **overrides)  # type: ignore[arg-type]


def in_ci() -> bool:
    """Whether this is a CI run (``CI`` set to anything but empty, ``0``, ``false`` or ``no``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """An e2e prerequisite is missing. A developer's run skips the test; a CI run fails it,
    since a suite whose e2e tests skipped would pass without having tested anything."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: an e2e test may not skip there)", pytrace=False)
    pytest.skip(reason)


def require_real_asterisk() -> None:
    if os.geteuid() != 0:
        unavailable("the local Asterisk runner needs root (chroot)")
    if shutil.which("sipp") is None:
        unavailable("SIPp (Debian: sip-tester) is not installed")


@contextlib.contextmanager
def asterisk_instance(config: Config, extra_files: Mapping[str, str] | None = None
                      ) -> Iterator[AsteriskRunner]:
    """A booted Asterisk for the block; always stopped and removed afterwards."""
    require_real_asterisk()
    runner = runner_for(config, extra_files=extra_files)
    try:
        status = runner.up()
        assert status.running and status.ari, status.detail
        yield runner
    finally:
        runner.down()
        if isinstance(runner, LocalRunner):  # the instance directory lives in the shared rootfs
            shutil.rmtree(runner.instance_dir, ignore_errors=True)


def credentials(config: Config) -> AsteriskCredentials:
    return resolve_credentials(config)


async def ami_client(config: Config) -> AmiClient:
    """A logged-in AMI session on the instance: the test's own, beside the daemon's."""
    creds = credentials(config)
    ami = AmiClient("127.0.0.1", config.asterisk.ami_port, creds.ami_user, creds.ami_password)
    await ami.connect(timeout=10)
    return ami


async def daemon_files(config: Config, dsn: str, *more: Mapping[str, str]) -> dict[str, str]:
    """What the daemon's plugins give Asterisk (realtime, CDRs, trunks; no dialplan), plus a
    test's own files merged by the same rule, for an instance the test boots itself."""
    source = AsteriskSource(config=config, dsn=dsn)
    return merge_files([*[await plugin.asterisk_files(source) for plugin in PLUGINS], *more])


async def astdb_get(ami: AmiClient, key: str) -> str | None:
    """The value of ``controlplane/<key>`` in Asterisk's astdb, None when absent."""
    result = await ami.action({"Action": "DBGet", "Family": "controlplane", "Key": key},
                              as_list=True, check=False)
    for message in result if isinstance(result, list) else [result]:
        if message.get("Val") is not None:
            return str(message.get("Val"))
    return None


def external(config: Config) -> Config:
    """``config`` for an in-process daemon driving the instance someone else runs."""
    return msgspec.structs.replace(config, asterisk=msgspec.structs.replace(
        config.asterisk, run=AsteriskRunMode.EXTERNAL))


async def sipp_call(config: Config, cwd: Path, exten: str, *, hold_ms: int = 1000,
                    timeout_s: int = 20) -> None:
    """One call with SIPp's built-in UAC scenario; SIPp hangs up after ``hold_ms``."""
    proc = await asyncio.create_subprocess_exec(
        "sipp", "-sn", "uac", "-s", exten, "-m", "1", "-d", str(hold_ms), "-i", "127.0.0.1",
        "-p", str(free_port(socket.SOCK_DGRAM)), "-timeout", f"{timeout_s}s", "-nostdin",
        f"127.0.0.1:{config.asterisk.sip_port}", cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]


def sipp_call_sync(config: Config, cwd: Path, exten: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sipp", "-sn", "uac", "-s", exten, "-m", "1", "-d", "500", "-i", "127.0.0.1",
         "-p", str(free_port(socket.SOCK_DGRAM)), "-timeout", "20s", "-timeout_error", "-nostdin",
         f"127.0.0.1:{config.asterisk.sip_port}"],
        cwd=cwd, capture_output=True, text=True, timeout=60)


def calls_config(data_dir: Path, *, instance: str, dsn: str, http: HttpConfig, emergency: bool = False,
                 **overrides: Any) -> Config:
    """``make_config`` for a daemon that carries calls: a SIPp carrier, fast reconcile and settle,
    admission's FastAGI port, and (``emergency``) 911 trunk and relay SIPp UASes, all on loopback."""
    if emergency:
        overrides["emergency"] = EmergencyConfig(
            trunk_host="127.0.0.1", trunk_port=free_port(socket.SOCK_DGRAM),
            relay_host="127.0.0.1", relay_port=free_port(socket.SOCK_DGRAM))
    return make_config(data_dir, instance=instance, http=http, database=DatabaseConfig(dsn=dsn),
                       carrier=CarrierConfig(host="127.0.0.1", port=free_port(socket.SOCK_DGRAM)),
                       calls=CallsConfig(reconcile_seconds=1.0, settle_seconds=1.0),
                       limits=LimitsConfig(agi_port=free_port()), **overrides)


@dataclass
class Beside:
    """The whole daemon in-process, driving a real Asterisk it does not run (``daemon_beside``)."""

    config: Config
    runner: AsteriskRunner
    ami: AmiClient  # the test's own session
    daemon: Daemon
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)  # killed at the end

    @property
    def app(self) -> Any:
        assert self.daemon.http is not None
        return self.daemon.http.app

    @property
    def etc_dir(self) -> Path:
        assert self.runner.etc_dir is not None
        return Path(self.runner.etc_dir)


@contextlib.asynccontextmanager
async def daemon_beside(config: Config, dsn: str, *, dialplan: bool = True) -> AsyncIterator[Beside]:
    """Boot Asterisk with the daemon's files, then the daemon beside it; on exit kill the
    processes left in ``procs``, stop the daemon and close the AMI session. ``dialplan``: the
    daemon's applier writes this instance's tenants dialplan (an external Asterisk's file)."""
    extra = await daemon_files(config, dsn)
    with asterisk_instance(config, extra) as runner:
        ami = await ami_client(config)
        daemon = Daemon(external(config))
        await daemon.start()
        beside = Beside(config, runner, ami, daemon)
        try:
            assert daemon.http is not None and runner.etc_dir is not None
            if dialplan:
                beside.app[tenant_services].applier.dialplan_path = beside.etc_dir / DIALPLAN_FILE
            yield beside
        finally:
            for proc in beside.procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            await daemon.stop()
            await ami.close()
