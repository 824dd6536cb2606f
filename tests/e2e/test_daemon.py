"""The daemon against a real Asterisk and a real PostgreSQL: it sees SIP calls,
and its readiness follows Asterisk going away and coming back."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from controlplane.asterisk.runner import AsteriskRunner
from controlplane.calls.plugin import tracker_key
from controlplane.config import AsteriskRunMode, DatabaseConfig, HttpConfig
from controlplane.daemon import Daemon
from harness import asterisk_instance, free_port, make_config, sipp_call, sipp_endpoint

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, database_dsn: str):
    return make_config(tmp_path_factory.mktemp("daemon"), instance=f"d{os.getpid()}",
                       http=HttpConfig(port=free_port(), service_token="test-token"),
                       database=DatabaseConfig(dsn=database_dsn))


@pytest.fixture(scope="module")
def asterisk(config) -> Iterator[AsteriskRunner]:
    with asterisk_instance(config, {"pjsip_extra.conf": sipp_endpoint("controlplane-test")}) as runner:
        yield runner


@pytest.fixture(scope="module")
async def daemon(config, asterisk: AsteriskRunner) -> AsyncIterator[Daemon]:
    # The instance belongs to the test; the daemon only connects to it.
    external = config.__class__(**{**_fields(config), "asterisk": _external(config.asterisk)})
    running = Daemon(external)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def _fields(struct: object) -> dict[str, object]:
    return {name: getattr(struct, name) for name in struct.__struct_fields__}  # type: ignore[attr-defined]


def _external(asterisk_config):
    return asterisk_config.__class__(**{**_fields(asterisk_config), "run": AsteriskRunMode.EXTERNAL})


async def _readyz(config) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{config.http.port}/readyz") as response:
            return response.status, await response.json()


async def _wait_ready(config, want: int, within: float) -> float:
    """Seconds until /readyz answers ``want``; fails after ``within``."""
    started = time.monotonic()
    while True:
        status, body = await _readyz(config)
        if status == want:
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"/readyz still {status} after {within} s: {body}"
        await asyncio.sleep(0.1)


async def test_ready_with_database_ari_and_ami(daemon: Daemon, config) -> None:
    await _wait_ready(config, 200, within=10)
    status, body = await _readyz(config)
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True, "ari": True, "ami": True, "emergency": True}
    # No emergency trunk in this config: development runs, and says so.
    assert body["checks"]["emergency"]["detail"] == "not configured"


async def test_daemon_sees_a_real_sip_call(daemon: Daemon, config, tmp_path: Path) -> None:
    exten = "4711"
    await sipp_call(config, tmp_path, exten, hold_ms=300)
    assert daemon.http is not None
    tracker = daemon.http.app[tracker_key]  # the calls plugin's, fed by the daemon's Asterisk link

    def seen() -> set[tuple[str, str]]:
        # The dialled number identifies the call's channel; later events are matched by its id
        # (a hangup reports wherever the channel was in the dialplan, not what was dialled).
        channels = {s.channel_id for s in tracker.recent() if s.exten == exten}
        return {(s.source, s.event) for s in tracker.recent() if s.channel_id in channels}

    deadline = time.monotonic() + 5
    # Every channel comes over AMI; ARI carries only the channels in our Stasis app.
    want = {("ami", "Newchannel"), ("ami", "Hangup")}
    while not want <= seen() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert want <= seen()
    call_ids = {s.call_id for s in tracker.recent() if s.exten == exten and s.source == "ami"}
    assert len(call_ids) == 1, "one call, one linkedid"


async def test_readiness_follows_asterisk_restarts(daemon: Daemon, config, asterisk: AsteriskRunner) -> None:
    await _wait_ready(config, 200, within=10)
    asterisk.kill()
    down_after = await _wait_ready(config, 503, within=5)
    status, body = await _readyz(config)
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["ari"]["ok"] is False and body["checks"]["ami"]["ok"] is False
    await asyncio.to_thread(asterisk.up)
    up_after = await _wait_ready(config, 200, within=15)
    print(f"\nreadyz: not-ready {down_after:.2f} s after kill, ready {up_after:.2f} s after restart")
