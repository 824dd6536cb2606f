"""Nothing lost across a crash: the daemon (`controlplane serve`, a subprocess) is
killed with SIGKILL while 100 calls go through a real Asterisk, then restarted.
Afterwards there is exactly one record per call, and the wallet, the usage and the
terminal events agree with the records.

Calls that ended while the daemon was dead come back from Asterisk's CDRs (the
reconciler); calls up across the restart are picked up from CoreShowChannels.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec
import pytest
import yaml
from wallet_support import active_funded
from harness import (ami_client, asterisk_instance, daemon_files, free_media_port, free_port, make_config,
                     until_bound)
from tenants_e2e import uas_scenario
from test_calls import TOLL_FREE
from tenants_e2e import call_scenario

from controlplane.profiles.models import AssignmentBody
from controlplane.profiles.services import ProfileServices
from controlplane.config import CallsConfig, CarrierConfig, DatabaseConfig, HttpConfig
from controlplane.tenants.applier import AmiControl, Applier
from controlplane.tenants.models import ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate
from controlplane.tenants.numbering import NumberingServices
from controlplane.tenants.services import TenantServices

pytestmark = [pytest.mark.e2e]
CALLS = 100
RATE = 10  # calls per second
HOLD_MS = 3000
KILL_AFTER = 4.0  # seconds into the run: ~40 calls placed, ~10 done, ~30 up
DOWN_FOR = 2.0
CONTROLPLANE = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "controlplane"


def start_daemon(config_path: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([str(CONTROLPLANE), "-c", str(config_path), "serve"], stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


async def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("daemon not ready: " + log.read_text()[-3000:])


async def wait_admission(log: Path, since: datetime, timeout: float = 30.0) -> None:
    """Until the restarted daemon's admission server listens (it starts after /readyz)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines()[::-1]:
            if "limits.agi_listening" in line:
                if datetime.fromisoformat(line.split()[0]) >= since:
                    return
                break
        await asyncio.sleep(0.05)
    raise AssertionError("admission server not listening again: " + log.read_text()[-3000:])


def stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def test_kill_9_during_100_calls_loses_and_doubles_nothing(
        tmp_path: Path, database_dsn: str, pool: asyncpg.Pool) -> None:
    carrier_port = free_port(socket.SOCK_DGRAM)
    http_port = free_port()
    config = make_config(tmp_path / "data", instance=f"restart{os.getpid()}",
                         http=HttpConfig(port=http_port, service_token="restart-token"),
                         database=DatabaseConfig(dsn=database_dsn),
                         carrier=CarrierConfig(host="127.0.0.1", port=carrier_port),
                         calls=CallsConfig(reconcile_seconds=1.0, settle_seconds=1.0))
    extra = await daemon_files(config, database_dsn)
    daemon: subprocess.Popen[bytes] | None = None
    sipps: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "daemon.log"
    with asterisk_instance(config, extra) as runner:
        ami = await ami_client(config)
        try:
            # Provision one tenant with one phone and a retail profile.
            assert runner.etc_dir is not None
            applier = Applier(pool, dialplan_path=Path(runner.etc_dir) / "extensions_tenants.conf",
                              control=AmiControl(ami))
            tenants, numbering = TenantServices(pool, applier), NumberingServices(pool, applier)
            partner = (await tenants.create_partner(PartnerCreate(name="Crash", tier=PartnerTier.BUSINESS))).id
            # ACTIVE: its calls draw on the wallet; admission holds up to max_call_seconds per call in
            # progress against it, so enough for every concurrent call of the burst.
            await active_funded(pool, partner, 10_000_000_000)
            tenant = (await tenants.create_tenant(partner, TenantCreate(
                name="Acme", billing_email="a@b.co", sip_prefix="acme"))).id
            phone = await numbering.create_extension(partner, tenant, ExtensionCreate(number="102",
                                                                                     display_name="U"))
            await applier.apply_dialplan(force=True)
            await ProfileServices(pool).assign(partner, tenant, AssignmentBody(
                per_minute_micros=50_000, toll_free_per_minute_micros=30_000, min_seconds=60,
                increment_seconds=6))

            # The daemon as operators run it: a config file, `controlplane serve`.
            doc = msgspec.to_builtins(config)
            doc["asterisk"]["run"] = "external"
            if "limits" in doc:  # admission (FastAGI) on a free port, beside any other run
                doc["limits"]["agi_port"] = free_port()
            config_path = tmp_path / "controlplane.yaml"
            config_path.write_text(yaml.safe_dump(doc))
            daemon = start_daemon(config_path, log)
            await wait_ready(http_port, daemon, log)

            work = Path(tempfile.mkdtemp(prefix="sipp-restart-"))
            (work / "uas.xml").write_text(uas_scenario(invite_timeout_ms=60000, bye_timeout_ms=30_000))
            (work / "uac.xml").write_text(call_scenario(auth=True, hold_ms=HOLD_MS))
            (work / "users.csv").write_text(f"SEQUENTIAL\n{phone.sip_username};\n")
            common = ["-i", "127.0.0.1", "-nostdin", "-timeout", "60s", "-trace_err", "-trace_msg", "-bg"][:-1]
            sipps.append(until_bound(subprocess.Popen(
                ["sipp", "-sf", "uas.xml", "-p", str(carrier_port), "-mp", str(free_media_port()),
                 *common], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), carrier_port))
            assert sipps[0].poll() is None, sipps[0].stderr.read().decode()[-1000:]  # type: ignore[union-attr]
            started = time.monotonic()
            sipps.append(subprocess.Popen(
                ["sipp", "-sf", "uac.xml", "-s", TOLL_FREE, "-r", str(RATE), "-m", str(CALLS), "-l", "60",
                 "-p", str(free_port(socket.SOCK_DGRAM)), "-mp", str(free_media_port()),
                 "-inf", "users.csv", "-au", phone.sip_username, "-ap", phone.secrets.sip_password,
                 *common, f"127.0.0.1:{config.asterisk.sip_port}"],
                cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            uas, uac = sipps

            await asyncio.sleep(KILL_AFTER)
            killed_at = datetime.now(UTC)
            daemon.send_signal(signal.SIGKILL)  # no goodbye: queues, tracker state, all gone
            daemon.wait(5)
            at_kill = await pool.fetchval("SELECT count(*) FROM call_records")
            up_at_kill = await pool.fetchval("SELECT count(*) FROM calls_active")
            await asyncio.sleep(DOWN_FOR)
            daemon = start_daemon(config_path, log)
            await wait_ready(http_port, daemon, log)
            if doc.get("limits", {}).get("enabled"):
                await wait_admission(log, since=killed_at)
            back_at = datetime.now(UTC)

            # A call SIPp saw fail still is a call (a FAILED record): what counts is one
            # record per call Asterisk had, so the exit status is reported, not asserted.
            uac_rc = await asyncio.to_thread(uac.wait, 60)
            uac_err = uac.stderr.read().decode(errors="replace")[-600:] if uac_rc and uac.stderr else ""
            uas.terminate()  # the carrier answers until every call is done
            placed_in = time.monotonic() - started

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                n = await pool.fetchval("SELECT count(*) FROM call_records")
                active = await pool.fetchval("SELECT count(*) FROM calls_active")
                if n >= CALLS and active == 0:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(2.5)  # a reconcile pass or two more: nothing may be added twice

            records = await pool.fetch("SELECT * FROM call_records")
            cdr_calls = await pool.fetchval(
                "SELECT count(DISTINCT linkedid) FROM asterisk_cdr WHERE accountcode = $1", tenant)
            print(f"\n{CALLS} calls in {placed_in:.1f} s; killed with {at_kill} recorded, {up_at_kill} up;"
                  f" late (rebuilt from CDRs): {sum(r['late'] for r in records)}")
            # Every call SIPp placed reached Asterisk (its own CDR), and each has one record.
            assert cdr_calls == CALLS, cdr_calls
            if len(records) != cdr_calls:
                missing = await pool.fetch(
                    "SELECT c.*, a.linkedid IS NOT NULL AS active FROM asterisk_cdr c"
                    " LEFT JOIN calls_active a USING (linkedid) WHERE c.accountcode = $1"
                    " AND NOT EXISTS (SELECT 1 FROM call_records r WHERE r.linkedid = c.linkedid)", tenant)
                lines = [line for line in log.read_text().splitlines()
                         if any(m["linkedid"] in line for m in missing)]
                raise AssertionError(f"{len(records)} records; missing: {[dict(m) for m in missing]}\n"
                                     + "\n".join(lines[-20:]))
            assert len(records) == len({r["linkedid"] for r in records}) == cdr_calls
            answered = [r for r in records if r["disposition"] == "ANSWERED"]
            # Admission (limits, fail-closed by default) refuses billable outbound calls with
            # 503 while the daemon's AGI server is down: those calls are FAILED records, free.
            slack = timedelta(seconds=0.5)
            outage = [r for r in records if killed_at - slack <= r["started_at"] <= back_at + slack]
            refused = [r for r in records if r["disposition"] != "ANSWERED"]
            print(f"answered {len(answered)}, refused {len(refused)} (daemon down"
                  f" {(back_at - killed_at).total_seconds():.1f} s, {len(outage)} calls started then);"
                  f" SIPp exit {uac_rc} {uac_err[-300:]!r}",
                  {(r["disposition"], r["hangup_cause"]) for r in records})
            assert all(r["disposition"] == "FAILED" and r["billable_s"] == 0 and not r["retail_micros"]
                       and not r["wholesale_micros"] for r in refused), {r["disposition"] for r in refused}
            assert len([r for r in refused if r not in outage]) <= 2, "calls refused outside the outage"
            assert len(answered) >= cdr_calls - len(outage) - 2
            assert {(r["direction"], r["call_class"]) for r in records} == {("outbound", "toll_free")}
            assert all(r["billable_s"] == 60 and r["retail_micros"] == 30_000 for r in answered)
            assert all(r["answered_s"] in (3, 4) for r in answered), {r["answered_s"] for r in answered}
            assert await pool.fetchval("SELECT count(*) FROM calls_active") == 0

            wholesale = sum(r["wholesale_micros"] for r in records)
            assert await pool.fetchval("SELECT sum(amount) FROM wallet_entries WHERE partner_id = $1"
                                       " AND call_id IS NOT NULL", partner) == -wholesale
            assert await pool.fetchval("SELECT sum(amount) FROM wallet_entries WHERE partner_id = $1",
                                       partner) == await pool.fetchval(
                "SELECT balance FROM partner_wallets WHERE partner_id = $1", partner)
            entries = await pool.fetch("SELECT call_id, amount FROM wallet_entries WHERE partner_id = $1"
                                       " AND call_id IS NOT NULL", partner)
            # One debit per charged call (a free, refused call moves no money).
            assert sorted(e["call_id"] for e in entries) == sorted(r["id"] for r in records
                                                                   if r["wholesale_micros"])
            usage = await pool.fetch("SELECT * FROM tenant_usage WHERE tenant_id = $1", tenant)
            assert sum(u["calls"] for u in usage) == cdr_calls
            assert sum(u["billable_s"] for u in usage) == sum(r["billable_s"] for r in records)
            assert sum(u["retail_micros"] for u in usage) == sum(r["retail_micros"] for r in records)
            assert sum(u["wholesale_micros"] for u in usage) == wholesale

            events = await pool.fetch("SELECT type, body FROM events WHERE tenant_id = $1", tenant)
            others = sorted({e["type"] for e in events if not e["type"].startswith("call.")})
            print("other events of the tenant:", others)
            per_call: dict[str, list[str]] = {}
            for e in events:
                if not e["type"].startswith("call."):
                    continue  # e.g. the limits capability's usage.* events
                call = msgspec.json.decode(e["body"])["data"]["call"]
                per_call.setdefault(call["id"], []).append(e["type"])
            assert set(per_call) == {r["id"] for r in records}
            for r in records:
                kinds = sorted(per_call[r["id"]])
                assert kinds == (["call.answered", "call.completed", "call.initiated"]
                                 if r["disposition"] == "ANSWERED" else ["call.failed", "call.initiated"]), kinds
        finally:
            for proc in sipps:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            stop(daemon)
            await ami.close()
