"""Hang-up -> rated record committed (+ its call.completed in the outbox), at ~100 calls/s.

    .venv/bin/python bench/bench_calls.py [--rate 100 --seconds 20 --hold-ms 200]

Needs root, the Asterisk rootfs and sipp (like the e2e tests). One real Asterisk (the
project's runner and base config, tenants realtime, cdr_pgsql) on free loopback ports,
one embedded PostgreSQL, SIPp on loopback only:

- a SIPp carrier (UAS) answers every call dialled on the carrier trunk;
- a SIPp UAC places short toll-free calls at ``--rate`` calls/s for ``--seconds`` from
  127.0.0.2, an endpoint identified by IP into the tenant's context (the production
  outbound path: tenant context -> cp-admit -> Dial(PJSIP/...@carrier)).

Run 1 (baseline): the same SIPp scenario against bare Asterisk, daemon not running (no
admission step in its dialplan, as with limits off). Run 2: the daemon in-process
(every plugin, limits included). Printed: calls/s of each run and their ratio, and the
latency from each call's end (Asterisk's own time: the Timestamp of the last AMI Hangup,
the record's ended_at) to (a) the commit of its record+debit+usage+event transaction
(the recorder's on_recorded hook, which runs after commit) and (b) the call.completed
event's created_at. Targets (issue 18): p99 of (a) < 50 ms, calls/s with the daemon >= 0.95
of bare Asterisk's, no failed call, no missing record. /metrics (the daemon's own listener)
is scraped before and after run 2: the call counters, the admission histogram and the
hang-up -> record histogram must have moved by the run's calls. Exits 1 when a target is
missed, 3 under CI when it cannot run (bench/verdict.py).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e"), str(ROOT / "bench")]

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
from verdict import Verdicts  # noqa: E402
from verdict import percentile as pct  # noqa: E402
from cpu import CpuMeter, postmaster_pid  # noqa: E402
from harness import LOAD_RTP, ami_client, daemon_files, external, free_media_port, free_port, make_config  # noqa: E402
from tenants_e2e import LOAD_IP, available, call_scenario, load_endpoint, sipp_load, uas_scenario  # noqa: E402

from controlplane.asterisk.ami import AmiClient  # noqa: E402
from controlplane.asterisk.runner import LocalRunner, runner_for  # noqa: E402
from controlplane.calls import plugin as calls_plugin  # noqa: E402
from controlplane.profiles.models import AssignmentBody  # noqa: E402
from controlplane.profiles.services import ProfileServices  # noqa: E402
from controlplane.config import (CarrierConfig, DatabaseConfig, HttpConfig,  # noqa: E402
                                 LimitsConfig, LoggingConfig, MetricsConfig)
from controlplane.daemon import Daemon  # noqa: E402
from controlplane.eventloop import loop_factory, loop_name  # noqa: E402
from controlplane.db.database import create_database, migrate_dsn  # noqa: E402
from controlplane.db.embedded import EmbeddedPostgres  # noqa: E402
from controlplane.logs import configure_logging  # noqa: E402
from controlplane.tenants.applier import AmiControl, Applier  # noqa: E402
from provisioning.dialplan import AdmissionStep  # noqa: E402
from controlplane.tenants.models import PartnerCreate, PartnerTier, TenantCreate  # noqa: E402
from controlplane.tenants.services import TenantServices  # noqa: E402
from controlplane.wallet import store as wallet_store  # noqa: E402
from controlplane.wallet.models import Entry, EntryKind  # noqa: E402

TARGET_P99_MS = 50.0
TARGET_RATIO = 0.95
VERDICTS = Verdicts("bench_calls")
# The /metrics samples compared before and after run 2 (sums over their labels).
SCRAPED = ("controlplane_calls_recorded_total", "controlplane_admissions_total",
           "controlplane_admission_decision_seconds_count", "controlplane_call_record_lag_seconds_count")


async def scrape(port: int) -> dict[str, float]:
    """The daemon's /metrics, the SCRAPED samples summed over their labels, and each
    admission outcome apart (``outcome:<label>``: a refusal names why a call was declined)."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    sums = dict.fromkeys(SCRAPED, 0.0)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in sums:
            sums[name] += float(line.rsplit(" ", 1)[1])
        if name == "controlplane_admissions_total":
            outcome = re.search(r'outcome="([^"]*)"', line)
            key = f"outcome:{outcome.group(1) if outcome else '?'}"
            sums[key] = sums.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return sums


# What PostgreSQL did for a run (pg_stat_database of the bench's database): per call, the
# transactions committed and the rows written (what a capacity model needs, docs/scale.md).
PG_STATS = "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database WHERE datname = current_database()"


async def pg_stats(pool: asyncpg.Pool) -> dict[str, int]:
    await pool.execute("SELECT pg_stat_clear_snapshot()")
    row = await pool.fetchrow(PG_STATS)
    assert row is not None
    return {key: int(row[key]) for key in ("xact_commit", "tup_inserted", "tup_updated", "tup_deleted")}


async def steady_wal(pool: asyncpg.Pool) -> None:
    """PostgreSQL's WAL as on a server that has run a while: segments recycled ahead of the
    insert position. A fresh initdb makes each new 16 MB segment by writing it full of zeros
    and syncing it, and every commit waits meanwhile (0.1-0.35 s on this machine, once per
    ~16 MB: once in run 2); a running server renames its old segments at each checkpoint."""
    for _ in range(3):
        await pool.execute("SELECT pg_switch_wal()")
        await pool.execute("CHECKPOINT")


async def wal_segments(pool: asyncpg.Pool) -> set[str]:
    return {r["name"] for r in await pool.fetch("SELECT name FROM pg_ls_waldir()")}


def asterisk_warnings(log_dir: Path | None, since: int) -> tuple[int, collections.Counter[str]]:
    """The size of Asterisk's messages.log now, and its WARNING/ERROR lines after byte ``since``
    by the source file that logged them (RTP port exhaustion says "couldn't allocate", from
    res_rtp_asterisk.c; an SDP refusal comes from res_pjsip_session.c / res_pjsip_sdp_rtp.c)."""
    path = (log_dir or Path("/nonexistent")) / "messages.log"
    if not path.exists():
        return since, collections.Counter()
    data = path.read_bytes()
    found: collections.Counter[str] = collections.Counter()
    for line in data[since:].decode("utf-8", "replace").splitlines():
        # "[2026-12-01 10:40:30.544] WARNING[22793][C-00000001] res_rtp_asterisk.c: ..."
        level = re.search(r"\] (WARNING|ERROR)\[\d+\](?:\[[^\]]*\])? ([\w.-]+):", line)
        if level:
            found[f"{level.group(1)} {level.group(2)}"] += 1
        if "allocate" in line:
            found["'allocate' (RTP port exhaustion)"] += 1
        if "admission unreachable" in line:  # the fail policy: the exchange outlived its timeout
            found["admission unreachable (fail-closed: 503)"] += 1
    return len(data), found
TOLL_FREE = "18005550199"


class Sipp:
    """The carrier UAS (runs throughout) and one rate-limited UAC run at a time."""

    def __init__(self, work: Path, sip_port: int, carrier_port: int) -> None:
        self.work, self.sip_port, self.carrier_port = work, sip_port, carrier_port
        (work / "uas.xml").write_text(uas_scenario())
        # From user "benchload": no endpoint of that name, so identification falls to the IP.
        (work / "uac.xml").write_text(call_scenario(auth=False, hold_ms=ARGS.hold_ms)
                                      .replace("sip:carrier@", "sip:benchload@"))
        self.uas: subprocess.Popen[bytes] | None = None

    def start_uas(self) -> None:
        self.uas = subprocess.Popen(
            ["sipp", "-sf", "uas.xml", "-i", "127.0.0.1", "-p", str(self.carrier_port),
             "-mp", str(free_media_port()), "-nostdin", "-timeout", "300s", "-max_recv_loops", "5000"],
            cwd=self.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.uas is not None and self.uas.poll() is None:
            self.uas.kill()
            self.uas.wait()

    async def run_uac(self, name: str, rate: int, calls: int) -> tuple[int, int, float]:
        """(successful, failed, wall seconds) of ``calls`` calls at ``rate`` calls/s."""
        stat = self.work / f"{name}.csv"
        args = ["sipp", "-sf", "uac.xml", "-s", TOLL_FREE, "-i", LOAD_IP, "-p", str(free_port(socket.SOCK_DGRAM)),
                "-mp", str(free_media_port()), "-r", str(rate), "-m", str(calls), "-l", "2000",
                "-nostdin", "-timeout", f"{int(calls / rate) + 60}s", "-trace_stat", "-stf", str(stat),
                "-fd", "1", "-max_recv_loops", "5000", "-trace_err", "-error_file", f"{name}.errors",
                f"127.0.0.1:{self.sip_port}"]
        ok, failed, wall = await sipp_load(args, self.work, stat, calls / rate + 60)
        errors = self.work / f"{name}.errors"
        if failed and errors.exists():  # what SIPp saw go wrong, for whoever reads the figures
            aborted = re.findall(r"\(aborted at index \d+\), received 'SIP/2.0 (\d+ [^\n]*)", errors.read_text())
            print(f"{name}: calls aborted on {dict(collections.Counter(aborted))}")
        return ok, failed, wall


async def bench(dsn: str, data: Path) -> int:
    carrier_port = free_port(socket.SOCK_DGRAM)
    config = make_config(data, instance=f"benchcalls{os.getpid()}", run="local", rtp=LOAD_RTP,
                         http=HttpConfig(port=free_port(), service_token=secrets.token_hex(8)),
                         database=DatabaseConfig(dsn=dsn),
                         carrier=CarrierConfig(host="127.0.0.1", port=carrier_port),
                         limits=LimitsConfig(agi_port=free_port()),
                         logging=LoggingConfig(level="warning"), metrics=MetricsConfig(port=free_port()))
    configure_logging(config)
    assert config.metrics.port is not None
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    # The tenant first (its id goes into the load endpoint), then Asterisk.
    tenants = TenantServices(pool, Applier(pool))
    partner = (await tenants.create_partner(PartnerCreate(name="Bench", tier=PartnerTier.BUSINESS))).id
    # ACTIVE and funded through the ledger: every call posts its wallet debit (a TRIAL partner's would not).
    await pool.execute("UPDATE partners SET status = 'ACTIVE' WHERE id = $1", partner)
    async with pool.acquire() as conn, conn.transaction():
        await wallet_store.post(conn, Entry(partner, EntryKind.MANUAL_ADJUSTMENT, 10**12, "adjust:bench-funding"))
    tenant = (await tenants.create_tenant(partner, TenantCreate(name="Acme", billing_email="a@b.co",
                                                                sip_prefix="acme"))).id
    await ProfileServices(pool).assign(partner, tenant, AssignmentBody(
        per_minute_micros=50_000, toll_free_per_minute_micros=30_000, min_seconds=60, increment_seconds=6))
    extra = await daemon_files(config, dsn, {"pjsip_extra.conf": load_endpoint(tenant, "acme")})
    runner = runner_for(config, extra_files=extra)
    assert isinstance(runner, LocalRunner)
    work = Path(tempfile.mkdtemp(prefix="bench-calls-"))
    sipp = Sipp(work, config.asterisk.sip_port, carrier_port)
    daemon: Daemon | None = None
    ami: AmiClient | None = None
    calls = ARGS.rate * ARGS.seconds
    try:
        status = runner.up()
        assert status.running, status.detail
        ami = await ami_client(config)
        assert runner.etc_dir is not None
        # Bare Asterisk: the tenant's dialplan without the admission step (as with limits off).
        applier = Applier(pool, dialplan_path=Path(runner.etc_dir) / "extensions_tenants.conf",
                          control=AmiControl(ami), admission=AdmissionStep.OFF)
        await applier.apply_dialplan(force=True)
        sipp.start_uas()
        await asyncio.sleep(0.5)

        # Run 1: bare Asterisk, no daemon.
        assert status.pid is not None
        base_cpu = CpuMeter({"Asterisk": status.pid}, {"PostgreSQL": postmaster_pid(PGDATA[0])})
        log_at, _ = asterisk_warnings(runner.log_dir, 0)
        base_cpu.start()
        base_ok, base_failed, base_wall = await sipp.run_uac("baseline", ARGS.rate, calls)
        base_cpu.stop()
        log_at, warned = asterisk_warnings(runner.log_dir, log_at)
        print(f"Asterisk warnings during the baseline: {dict(warned)}")
        base_rate = base_ok / (base_wall - ARGS.hold_ms / 1000)
        print(f"bare Asterisk: {base_ok}/{calls} calls ok ({base_failed} failed) in {base_wall:.1f} s"
              f" -> {base_rate:.1f} calls/s")
        print(f"CPU bare Asterisk: {base_cpu.line(base_ok)}")
        await asyncio.sleep(1.0)
        # The baseline's calls are not the daemon's to reconcile during run 2.
        await pool.execute("UPDATE asterisk_cdr SET handled = true")
        # Run 2's dialplan is the daemon's: with the admission step its config renders.
        applier.admission = AdmissionStep.of(config.limits.enabled, config.limits.fail_open)
        await applier.apply_dialplan(force=True)
        # The bench's own AMI session (only needed for the dialplan above) would parse every
        # AMI event of run 2 a second time, on the daemon's event loop: close it first.
        await ami.close()
        ami = None

        # Run 2: the daemon in-process, as `controlplane serve` wires it.
        daemon = Daemon(external(config))
        await daemon.start()
        assert daemon.http is not None
        recorder = daemon.http.app[calls_plugin.recorder_key]
        committed: dict[str, float] = {}
        ended: dict[str, float] = {}

        def on_recorded(record: object) -> None:  # runs right after the transaction committed
            now = time.time()
            committed[record.linkedid] = now  # type: ignore[attr-defined]
            ended[record.linkedid] = record.ended_at.timestamp()  # type: ignore[attr-defined]

        recorder.on_recorded.append(on_recorded)
        # When each call's end reached the recorder (the AMI Hangup read and tracked): splits
        # the lag into Asterisk -> daemon (AMI stream, scheduling) and daemon -> commit.
        seen: dict[str, float] = {}
        submit = recorder.submit

        def submit_timed(actions: list[object]) -> None:
            now = time.time()
            for action in actions:
                summary = getattr(action, "summary", None)
                if summary is not None:
                    seen.setdefault(summary.call_id, now)
            submit(actions)  # type: ignore[arg-type]

        daemon.http.app[calls_plugin.tracker_key].attach(submit_timed)  # type: ignore[arg-type]
        # Admission is published over AMI right after its FastAGI server listens.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", config.limits.agi_port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        await steady_wal(pool)
        segments = await wal_segments(pool)
        base_records = await pool.fetchval("SELECT count(*) FROM call_records")
        before = await scrape(config.metrics.port)
        # The window holds the run and the recorder's drain after it: the daemon's work per call.
        cpu = CpuMeter({"daemon": os.getpid(), "Asterisk": status.pid}, {"PostgreSQL": postmaster_pid(PGDATA[0])})
        stats_before = await pg_stats(pool)
        log_at, _ = asterisk_warnings(runner.log_dir, 0)
        cpu.start()
        ok, failed, wall = await sipp.run_uac("daemon", ARGS.rate, calls)
        rate = ok / (wall - ARGS.hold_ms / 1000)
        print(f"with daemon:   {ok}/{calls} calls ok ({failed} failed) in {wall:.1f} s -> {rate:.1f} calls/s")
        deadline = time.monotonic() + 20
        while len(committed) < ok and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        cpu.stop()
        # A segment made during the run would be the fresh-cluster stall steady_wal avoids.
        VERDICTS.info("WAL segments created during run 2 (steady state: 0)", len(await wal_segments(pool) - segments))
        print(f"CPU with daemon: {cpu.line(ok)}")
        _, warned = asterisk_warnings(runner.log_dir, log_at)
        print(f"Asterisk warnings during run 2: {dict(warned)}")
        stats_after = await pg_stats(pool)
        # The bench's own statements in the window (two pg_stats) are 2 transactions, no rows.
        per_call = {k: (stats_after[k] - stats_before[k] - (2 if k == "xact_commit" else 0)) / max(ok, 1)
                    for k in stats_after}
        print("PostgreSQL per call (pg_stat_database, every writer incl. Asterisk's cdr_pgsql): "
              + ", ".join(f"{k} {v:.2f}" for k, v in per_call.items()))
        backlog = recorder.backlog()
        after = await scrape(config.metrics.port)
        moved = {name: after[name] - before.get(name, 0.0) for name in after}
        print("/metrics during run 2: " + ", ".join(f"{name} +{n:.0f}" for name, n in moved.items()))
        live_lat = [(committed[k] - ended[k]) * 1000 for k in committed]
        rows = await pool.fetch(
            """SELECT r.linkedid, extract(epoch FROM r.ended_at) AS ended,
                      extract(epoch FROM e.created_at) AS created
               FROM call_records r JOIN events e
                 ON e.type IN ('call.completed', 'call.failed')
                AND convert_from(e.body, 'UTF8') LIKE '%' || r.id || '%'
               WHERE r.linkedid = ANY($1::text[])""", list(committed)) if len(committed) <= 5000 else []
        event_lat = [(float(r["created"]) - float(r["ended"])) * 1000 for r in rows]
        print(f"records committed live: {len(committed)} (records before run 2: {base_records},"
              f" reconciler late ones not counted), call.completed|failed events found: {len(rows)}, backlog {backlog}")
        if not live_lat:
            VERDICTS.broken("hang-up -> record committed", "no record committed")
            return 1
        p50, p99 = pct(live_lat, 50), pct(live_lat, 99)
        print(f"hang-up -> record committed: p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {max(live_lat):.1f} ms"
              f"  (n={len(live_lat)})  target p99 < {TARGET_P99_MS:.0f} ms")
        arrived = [(seen[k] - ended[k]) * 1000 for k in committed if k in seen]
        written = [(committed[k] - seen[k]) * 1000 for k in committed if k in seen]
        if arrived:
            print(f"  of which hang-up -> end seen by the recorder: p50 {pct(arrived, 50):.1f} ms"
                  f"  p99 {pct(arrived, 99):.1f} ms; seen -> committed: p50 {pct(written, 50):.1f} ms"
                  f"  p99 {pct(written, 99):.1f} ms")
            VERDICTS.info("hang-up -> end seen by the daemon p99", pct(arrived, 99), "ms")
            VERDICTS.info("end seen -> record committed p99", pct(written, 99), "ms")
        if event_lat:
            print(f"hang-up -> call.completed created_at: p50 {pct(event_lat, 50):.1f} ms"
                  f"  p99 {pct(event_lat, 99):.1f} ms")
        ratio = rate / base_rate if base_rate else 0.0
        print(f"call rate with daemon / bare Asterisk: {rate:.1f} / {base_rate:.1f} = {ratio:.3f}")
        missing = ok - len(committed)
        VERDICTS.info("bare Asterisk calls/s", base_rate, "/s")
        VERDICTS.info("calls/s with the daemon", rate, "/s")
        VERDICTS.info("daemon CPU per call", cpu.per_call(ok)["daemon"], "ms")
        VERDICTS.info("Asterisk CPU per call with the daemon", cpu.per_call(ok)["Asterisk"], "ms")
        VERDICTS.info("Asterisk CPU per call, bare", base_cpu.per_call(base_ok)["Asterisk"], "ms")
        VERDICTS.info("PostgreSQL CPU per call with the daemon", cpu.per_call(ok)["PostgreSQL"], "ms")
        VERDICTS.info("PostgreSQL CPU per call, bare", base_cpu.per_call(base_ok)["PostgreSQL"], "ms")
        VERDICTS.info("PostgreSQL transactions per call (all writers)", per_call["xact_commit"])
        VERDICTS.info("PostgreSQL rows written per call (ins+upd+del)",
                      per_call["tup_inserted"] + per_call["tup_updated"] + per_call["tup_deleted"])
        VERDICTS.at_least("calls/s with the daemon / bare Asterisk", ratio, TARGET_RATIO)
        VERDICTS.exactly("failed calls with the daemon", failed, 0)
        VERDICTS.exactly("failed calls on bare Asterisk (the baseline itself)", base_failed, 0)
        VERDICTS.below("hang-up -> record committed p99", p99, TARGET_P99_MS, "ms")
        VERDICTS.exactly("records missing 20 s after the run", max(missing, 0), 0)
        VERDICTS.exactly("records without their call.completed|failed event", len(committed) - len(rows), 0)
        for name in SCRAPED:  # each answered call is recorded once, admitted once
            VERDICTS.at_least(f"/metrics {name} moved by", moved[name], len(committed))
        return VERDICTS.exit_code()
    finally:
        if daemon is not None:
            await daemon.stop()
        sipp.stop()
        if ami is not None:
            await ami.close()
        await pool.close()
        runner.down()
        shutil.rmtree(runner.instance_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


PGDATA: list[str] = []  # the embedded server's data directory (its postmaster.pid: the CPU meter)


async def _main(server: EmbeddedPostgres, data: Path) -> int:
    PGDATA[:] = [str(server.pgdata)]
    print(f"event loop: {loop_name(asyncio.get_running_loop())}")
    name = f"bench_{secrets.token_hex(4)}"
    await create_database(server.dsn(), name)
    await migrate_dsn(server.dsn(name))
    return await bench(server.dsn(name), data)


def run() -> int:
    why = available()
    if why:
        print(f"bench_calls: cannot run here: {why}")
        VERDICTS.skipped("call rate and hang-up -> record", why)
        return VERDICTS.finish()
    with tempfile.TemporaryDirectory(prefix="bench-calls-pg-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        server.start()
        try:
            with asyncio.Runner(loop_factory=loop_factory(ARGS.loop)) as runner:
                runner.run(_main(server, Path(tmp) / "data"))
        except Exception as exc:
            import traceback

            traceback.print_exc()
            VERDICTS.broken("run", f"{type(exc).__name__}: {exc}")
        finally:
            server.stop()
    return VERDICTS.finish()


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--rate", type=int, default=100, help="calls per second")
parser.add_argument("--seconds", type=int, default=20, help="seconds of load per run")
parser.add_argument("--hold-ms", type=int, default=200, help="how long each call stays up")
parser.add_argument("--loop", choices=("default", "asyncio", "uvloop"), default="default",
                    help="the event loop of the in-process daemon (default: the daemon's own choice)")
ARGS = parser.parse_args([] if __name__ != "__main__" else None)

if __name__ == "__main__":
    sys.exit(run())
