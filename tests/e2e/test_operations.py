"""Issue 18's operations, end to end: ``controlplane serve`` (its own process, production
mode) beside a real Asterisk, SIPp calls through admission to a SIPp carrier; /metrics
scraped before, during and after; the daemon's whole output must be JSON on every line."""

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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import msgspec
import pytest
import yaml
from harness import asterisk_instance, ami_client, daemon_files, free_media_port, free_port, make_config, until_bound
from tenants_e2e import LOAD_IP, call_scenario, load_endpoint, uas_scenario
from wallet_support import active_funded

from controlplane.asterisk.ami import AmiClient
from controlplane.profiles.models import AssignmentBody
from controlplane.profiles.services import ProfileServices
from controlplane.config import (AsteriskRunMode, CarrierConfig, DatabaseConfig, EmergencyConfig, HttpConfig,
                                 LimitsConfig, MetricsConfig, Mode)
from controlplane.tenants.applier import AmiControl, Applier
from controlplane.tenants.models import PartnerCreate, PartnerTier, TenantCreate
from controlplane.tenants.services import TenantServices

pytestmark = [pytest.mark.e2e]
TOLL_FREE = "18005550199"
TOKEN = "ops-e2e-token"
# Every family /metrics must show (docs/operations.md), scraped with or without samples.
FAMILIES = ["controlplane_calls_in_progress", "controlplane_calls_recorded_total", "controlplane_call_record_lag_seconds",
            "controlplane_admissions_total", "controlplane_admission_decision_seconds", "controlplane_asterisk_connected",
            "controlplane_asterisk_reconnects_total", "controlplane_webhook_queue_depth",
            "controlplane_webhook_deliveries_total", "controlplane_webhook_attempt_seconds",
            "controlplane_email_queue_depth", "controlplane_db_pool_connections",
            "controlplane_http_request_seconds"]


@dataclass
class Ops:
    work: Path
    sip_port: int
    metrics_port: int
    http_port: int
    tenant: str
    partner: str
    log: Path
    daemon: subprocess.Popen[bytes]
    pool: asyncpg.Pool


def scrape(port: int) -> tuple[str, dict[str, float]]:
    """The exposition text, and each sample line's value by its name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return text, samples


def calls(ops: Ops, count: int, hold_ms: int) -> subprocess.Popen[bytes]:
    scenario = ops.work / f"uac-{hold_ms}.xml"
    # From user "benchload": no endpoint of that name, so identification falls to the IP (load_endpoint).
    scenario.write_text(call_scenario(auth=False, hold_ms=hold_ms).replace("sip:carrier@", "sip:benchload@"))
    return subprocess.Popen(
        ["sipp", "-sf", str(scenario), "-s", TOLL_FREE, "-i", LOAD_IP, "-p", str(free_port(socket.SOCK_DGRAM)),
         "-mp", str(free_media_port()), "-m", str(count), "-r", "2", "-nostdin", "-timeout", "60s",
         f"127.0.0.1:{ops.sip_port}"], cwd=ops.work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
async def ops(tmp_path_factory: pytest.TempPathFactory, database_dsn: str,
              pool: asyncpg.Pool) -> AsyncIterator[Ops]:
    work = tmp_path_factory.mktemp("ops")
    carrier_port = free_port(socket.SOCK_DGRAM)
    config = make_config(work / "var", instance=f"ops{os.getpid()}",
                         http=HttpConfig(port=free_port(), service_token=TOKEN),
                         database=DatabaseConfig(dsn=database_dsn),
                         carrier=CarrierConfig(host="127.0.0.1", port=carrier_port),
                         limits=LimitsConfig(agi_port=free_port()), metrics=MetricsConfig(port=free_port()),
                         emergency=EmergencyConfig(trunk_host="127.0.0.1", trunk_port=free_port(socket.SOCK_DGRAM)))
    tenants = TenantServices(pool, Applier(pool))
    partner = (await tenants.create_partner(PartnerCreate(name="Ops", tier=PartnerTier.BUSINESS))).id
    tenant = (await tenants.create_tenant(partner, TenantCreate(name="Acme", billing_email="a@b.co",
                                                                sip_prefix="opsacme"))).id
    await ProfileServices(pool).assign(partner, tenant, AssignmentBody(
        per_minute_micros=50_000, toll_free_per_minute_micros=30_000, min_seconds=60, increment_seconds=6))
    await active_funded(pool, partner, 10**9)  # an ACTIVE partner with a funded wallet
    extra = await daemon_files(config, database_dsn, {"pjsip_extra.conf": load_endpoint(tenant, "opsacme")})
    with asterisk_instance(config, extra) as runner:
        ami: AmiClient = await ami_client(config)
        assert runner.etc_dir is not None
        await Applier(pool, dialplan_path=Path(runner.etc_dir) / "extensions_tenants.conf",
                      control=AmiControl(ami)).apply_dialplan(force=True)
        await ami.close()
        production = msgspec.structs.replace(config, mode=Mode.PRODUCTION, asterisk=msgspec.structs.replace(
            config.asterisk, run=AsteriskRunMode.EXTERNAL))
        path = work / "controlplane.yaml"
        path.write_text(yaml.safe_dump(msgspec.to_builtins(production)))
        log = work / "daemon.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
        with log.open("wb") as out:
            daemon = subprocess.Popen([sys.executable, "-m", "controlplane", "-c", str(path), "serve"], cwd=work,
                                      stdout=out, stderr=subprocess.STDOUT, env=env)
        (work / "uas.xml").write_text(uas_scenario())
        uas = until_bound(subprocess.Popen(["sipp", "-sf", "uas.xml", "-i", "127.0.0.1", "-p", str(carrier_port),
                                            "-mp", str(free_media_port()), "-nostdin", "-timeout", "300s"],
                                           cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                          carrier_port)
        try:
            deadline = time.monotonic() + 60
            while not _ready(config.http.port):
                assert daemon.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                await asyncio.sleep(0.3)
            assert config.metrics.port is not None
            yield Ops(work, config.asterisk.sip_port, config.metrics.port, config.http.port, tenant, partner, log,
                      daemon, pool)
        finally:
            for proc in (uas, daemon):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()


def _ready(port: int) -> bool:
    """Ready: the database, ARI and AMI all answer (and the admission address is published after)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


async def test_metrics_count_calls_admissions_and_record_lag(ops: Ops) -> None:
    text, before = scrape(ops.metrics_port)
    for family in FAMILIES:
        assert f"# TYPE {family} " in text, family
    assert before['controlplane_asterisk_connected{link="ami"}'] == 1.0
    assert before['controlplane_asterisk_connected{link="ari"}'] == 1.0
    assert before['controlplane_db_pool_connections{state="max"}'] >= 1
    await asyncio.sleep(2.0)  # the admission address reaches astdb right after readiness

    # One long call: seen in progress, by direction and class.
    long_call = calls(ops, 1, hold_ms=6000)
    deadline, seen = time.monotonic() + 20, 0.0
    while time.monotonic() < deadline and not seen:
        seen = scrape(ops.metrics_port)[1].get(
            'controlplane_calls_in_progress{call_class="toll_free",direction="outbound"}', 0.0)
        await asyncio.sleep(0.2)
    assert seen >= 1, "the call in progress never showed"
    short = calls(ops, 3, hold_ms=300)
    for proc in (long_call, short):
        _, err = await asyncio.to_thread(proc.communicate, timeout=90)
        assert proc.returncode == 0, err.decode(errors="replace")[-1500:]

    recorded = 'controlplane_calls_recorded_total{call_class="toll_free",direction="outbound",disposition="ANSWERED"}'
    deadline = time.monotonic() + 20
    while True:
        text, after = scrape(ops.metrics_port)
        if after.get(recorded, 0.0) - before.get(recorded, 0.0) >= 4 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert after.get(recorded, 0.0) - before.get(recorded, 0.0) == 4
    lag = "controlplane_call_record_lag_seconds_count"
    assert after[lag] - before.get(lag, 0.0) == 4
    admitted = 'controlplane_admissions_total{outcome="admitted"}'
    assert after[admitted] - before.get(admitted, 0.0) == 4
    decisions = "controlplane_admission_decision_seconds_count"
    assert after[decisions] - before.get(decisions, 0.0) == 4
    assert after['controlplane_admission_decision_seconds_bucket{le="+Inf"}'] == after[decisions]
    assert after.get('controlplane_calls_in_progress{call_class="toll_free",direction="outbound"}', 0.0) == 0
    assert await ops.pool.fetchval("SELECT count(*) FROM call_records WHERE tenant_id = $1", ops.tenant) == 4
    # Labels carry classes and states, never who.
    assert ops.tenant not in text and ops.partner not in text


async def test_production_output_is_json_on_every_line(ops: Ops) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{ops.http_port}/v1/tenants/{ops.tenant}",
                                     headers={"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": ops.partner})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    unknown = urllib.request.Request(f"http://127.0.0.1:{ops.http_port}/v1/nothing-here",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(unknown, timeout=10)
    ops.daemon.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(ops.daemon.wait, 60) == 0
    lines = ops.log.read_text().splitlines()
    assert len(lines) > 10
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"line {number} of the production log is not JSON: {line!r}")
    assert all(isinstance(r, dict) and "event" in r and "timestamp" in r and "level" in r for r in records)
    events = [r["event"] for r in records]
    assert "daemon.ready" in events and "daemon.stopped" in events and "metrics.listening" in events
    access = [r for r in records if r["event"] == "http.request"]
    served = next(r for r in access if r["path"] == f"/v1/tenants/{ops.tenant}")
    assert served["status"] == 200 and served["route"] == "/v1/tenants/{tenant_id}" and served["request_id"]
    assert any(r["status"] == 404 and r["route"] == "unmatched" for r in access)
