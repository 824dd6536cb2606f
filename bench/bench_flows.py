"""Call flows at scale: one flow change live vs a full dialplan reload of the same state, same run.

    .venv/bin/python bench/bench_flows.py [--tenants 1000 --changes 100 --calls 10]

Needs root, the Asterisk rootfs and sipp. The daemon's plugins (every FlowSection: IVRs, time
conditions, ring groups, queues, voicemail...) over one database: each tenant gets two
extensions, a DID, an IVR, a time condition, a ring group and a queue through the RPC (a kind
whose capability is not in the tree is left out and said so). Asterisk boots with the tenants
dialplan and every tenant's flows file. Then:

- baseline: a full ``dialplan reload`` of that state, p50/max of a few;
- one flow change: the DID's route flipped (IVR <-> time condition) through the RPC service,
  ``tenant_flows_changed`` -> the flows applier's AMI difference -> acknowledged by Asterisk
  (live in its dialplan): p50/p99 over N changes (target: p99 < 100 ms), each checked in
  ``dialplan show``; and for a sample, commit -> a SIPp carrier call to the DID answered by the
  new route (minus SIPp's own start-up, measured on a route that did not change).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e"), str(ROOT / "tests" / "support"), str(ROOT / "bench")]

import asyncpg  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from flows_support import carrier_dtmf_scenario  # noqa: E402
from tenants_e2e import CARRIER_TRUNK, TenantAsterisk, available, sipp  # noqa: E402
from verdict import Verdicts  # noqa: E402
from verdict import percentile as pct  # noqa: E402

from controlplane.asterisk.ami import AmiClient  # noqa: E402
from controlplane.config import Config  # noqa: E402
from controlplane.db.database import create_database, migrate_dsn  # noqa: E402
from controlplane.db.embedded import EmbeddedPostgres  # noqa: E402
from controlplane.flows.applier import flows_file, render_contexts  # noqa: E402
from controlplane.flows.plugin import applier_key  # noqa: E402
from controlplane.http.app import make_app  # noqa: E402
from controlplane.plugin_list import PLUGINS  # noqa: E402
from controlplane.plugins import Context  # noqa: E402
from controlplane.tenants.applier import render_current  # noqa: E402
from provisioning.destinations import flows_context  # noqa: E402
from provisioning.dialplan import AdmissionStep  # noqa: E402
from provisioning.flow_compile import render_file  # noqa: E402

LIVE_BUDGET_MS = 100.0
TOKEN = "bench-token"


async def load(pool: asyncpg.Pool, partner: str, n: int) -> list[tuple[str, str, str, str]]:
    """(tenant id, prefix, did id, did number) per tenant, bulk-inserted."""
    rows = [(f"ten_{i:05d}", f"f{i:05d}", f"did_{i:05d}", f"+1555{i:07d}") for i in range(n)]
    async with pool.acquire() as conn:
        await conn.copy_records_to_table("tenants", columns=["id", "partner_id", "name", "sip_prefix",
                                                             "billing_email", "status"],
                                         records=[(t, partner, t, p, "b@b.co", "ACTIVE") for t, p, _, _ in rows])
        await conn.copy_records_to_table("extensions", columns=["id", "tenant_id", "number", "display_name",
                                                                "sip_ha1"],
                                         records=[(f"ext_{t}_{x}", t, x, x, "0" * 32) for t, _, _, _ in rows
                                                  for x in ("101", "102")])
        await conn.copy_records_to_table("dids", columns=["id", "partner_id", "number", "tenant_id", "status"],
                                         records=[(d, partner, num, t, "ACTIVE") for t, _, d, num in rows])
    return rows


HEADERS = {"Authorization": f"Bearer {TOKEN}"}


async def call(client: TestClient, method: str, path: str, body: Any) -> tuple[int, Any]:
    resp = await client.request(method, path, json=body, headers=HEADERS)
    return resp.status, await resp.json(content_type=None)


async def populate(client: TestClient, rows: list[tuple[str, str, str, str]], kinds: list[str]) -> dict[str, dict]:
    """Per tenant: an IVR, a time condition, a ring group and a queue (those whose routes exist)."""
    made: dict[str, dict] = {}
    sem = asyncio.Semaphore(8)
    ext = {"kind": "extension", "ref": "101"}

    async def one(tid: str) -> None:
        async with sem:
            base = f"/v1/tenants/{tid}"
            mine: dict[str, Any] = {}
            if "ring_group" in kinds:
                s, rg = await call(client, "POST", base + "/ring-groups", {
                    "name": "Sales", "members": [{"kind": "extension", "number": "101"},
                                                 {"kind": "extension", "number": "102"}], "no_answer": ext})
                mine["rg"] = rg["id"] if s == 201 else None
            if "queue" in kinds:
                s, q = await call(client, "POST", base + "/queues", {
                    "name": "Support", "members": [{"number": "101"}, {"number": "102"}], "overflow": ext})
                mine["q"] = q["id"] if s == 201 else None
            two = {"kind": "ring_group", "ref": mine["rg"]} if mine.get("rg") else {"kind": "extension", "ref": "102"}
            s, ivr = await call(client, "POST", base + "/ivrs", {
                "name": "Main", "options": {"1": ext, "2": two}, "timeout_destination": ext})
            assert s == 201, ivr
            s, tc = await call(client, "POST", base + "/time-conditions", {
                "name": "Hours", "hours": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00",
                                            "end": "17:00"}], "holidays": ["2026-12-25"],
                "open_destination": {"kind": "ivr", "ref": ivr["id"]}, "closed_destination": ext})
            assert s == 201, tc
            mine.update(ivr=ivr["id"], tc=tc["id"])
            made[tid] = mine

    await asyncio.gather(*(one(t) for t, _, _, _ in rows))
    return made


async def main(args: argparse.Namespace) -> int:
    verdicts = Verdicts("bench_flows")
    return await verdicts.measured("flows at scale", available(), lambda: measure(args, verdicts))


async def measure(args: argparse.Namespace, verdicts: Verdicts) -> None:
    pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="bench-pg-")))
    pg.start()
    asterisk = None
    try:
        name = f"bench_{secrets.token_hex(4)}"
        await create_database(pg.dsn(), name)
        dsn = pg.dsn(name)
        await migrate_dsn(dsn)
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=8)
        assert pool is not None
        context = Context(config=Config(), pool=pool)
        app = make_app(service_token_value=TOKEN, probes=[], plugins=PLUGINS, context=context,
                       platform_token_value="bench-platform")
        client = TestClient(TestServer(app))
        await client.start_server()
        routes = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
        kinds = [k for k, path in (("ring_group", "/v1/tenants/{tenant_id}/ring-groups"),
                                   ("queue", "/v1/tenants/{tenant_id}/queues")) if path in routes]
        status, partner = await call(client, "POST", "/v1/partners", {"name": "Bench", "tier": "BUSINESS"})
        assert status == 201, partner
        HEADERS["X-Partner-Id"] = partner["id"]
        rows = await load(pool, partner["id"], args.tenants)
        started = time.perf_counter()
        made = await populate(client, rows, kinds)
        print(f"{args.tenants} tenants, each 2 extensions, a DID, an IVR, a time condition"
              f"{''.join(', a ' + k.replace('_', ' ') for k in kinds)}: {time.perf_counter() - started:.1f} s via the RPC"
              f"{'' if len(kinds) == 2 else ' (missing in this tree: ' + str({'ring_group', 'queue'} - set(kinds)) + ')'}")
        # every DID routed to its tenant's time condition (which opens to the IVR)
        async with pool.acquire() as conn:
            await conn.executemany("INSERT INTO did_routes (did_id, tenant_id, target_kind, target_ref)"
                                   " VALUES ($1, $2, 'time_condition', $3)",
                                   [(d, t, made[t]["tc"]) for t, _, d, _ in rows])
            started = time.perf_counter()
            rendered = await render_contexts(conn, context.flow_sections, None)
            render_s = time.perf_counter() - started
            tenants_text = await render_current(conn, trunk="carrier", admission=AdmissionStep.OFF)
        files = {flows_file(p): render_file(flows_context(p), c) for p, c in rendered.values()}
        lines = sum(len(c) for _, c in rendered.values())
        print(f"render of every tenant's flows context: {render_s:.2f} s, {lines} priorities "
              f"({sum(len(t) for t in files.values()) / 1e6:.1f} MB) + tenants dialplan "
              f"{len(tenants_text.splitlines())} lines")
        verdicts.info("render every flows context (1,000 tenants)", render_s, "s")

        asterisk = TenantAsterisk(dsn, extra_pjsip=CARRIER_TRUNK, extra_files=files, boot_timeout=300)
        asterisk.dialplan_path.parent.mkdir(parents=True, exist_ok=True)
        boot_s = asterisk.start()
        asterisk.dialplan_path.write_text(tenants_text)
        ami = AmiClient("127.0.0.1", asterisk.ami_port, asterisk.ami_user, asterisk.secret)
        await ami.connect(timeout=10)
        await ami.wait_fully_booted(300)

        # ---- baseline: a full dialplan reload of the same state
        reloads = []
        for _ in range(args.reloads):
            t0 = time.perf_counter()
            await ami.action({"Action": "Command", "Command": "dialplan reload"}, timeout=300, check=False)
            # the reload is done when the dialplan answers again with the last tenant's context
            await ami.action({"Action": "Command", "Command": f"dialplan show did@{flows_context(rows[-1][1])}"},
                             timeout=300, check=False)
            reloads.append(time.perf_counter() - t0)
        print(f"booted in {boot_s:.1f} s; full `dialplan reload` ({len(reloads)}x): p50 {pct(reloads, 50):.2f} s,"
              f" max {max(reloads):.2f} s")
        verdicts.info("full dialplan reload of the same state, p50", pct(reloads, 50) * 1000, "ms")

        # ---- one flow change: commit -> AMI difference acknowledged (live in the dialplan)
        applier = app[applier_key]
        applier.ami, applier.etc_dir = ami, asterisk.etc
        applier._applied = dict(rendered)  # what Asterisk loaded from the files
        runner = asyncio.create_task(applier.run())
        flows = app[__import__("controlplane.flows.http", fromlist=["services_key"]).services_key]
        from controlplane.flows.models import DestinationBody, RouteBody

        lives: list[float] = []
        commits: list[float] = []
        applies: list[float] = []  # render of the tenant + file + AMI round trips
        load_before = os.getloadavg()[0]
        wrong = 0
        for i in range(args.changes):
            tid, prefix, did, number = rows[(i * 37) % len(rows)]
            kind = "ivr" if i % 2 == 0 else "time_condition"
            ref = made[tid]["ivr" if kind == "ivr" else "tc"]
            t0 = time.perf_counter()
            await flows.route_did(partner["id"], tid, did, RouteBody(destination=DestinationBody(kind=kind, ref=ref)))
            t1 = time.perf_counter()
            await applier.wait_applied(tid, timeout=10)
            lives.append(time.perf_counter() - t0)
            commits.append(t1 - t0)
            applies.append(applier.last_apply_seconds or 0.0)
            shown = await ami.action({"Action": "Command",
                                      "Command": f"dialplan show did-{number[1:]}@{flows_context(prefix)}"},
                                     check=False)
            text = str(shown[0] if isinstance(shown, list) else shown)
            wrong += 0 if ref in text else 1
        verdicts.exactly(f"changes not in Asterisk's dialplan after apply, of {args.changes}", wrong, 0)
        slow = sorted(range(len(lives)), key=lambda i: lives[i])[-3:]
        print(f"load average (1 min) {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
              f"apply (render one tenant + file + AMI) p50 {pct(applies, 50) * 1000:.1f} ms "
              f"p99 {pct(applies, 99) * 1000:.1f} ms; slowest changes (total/commit/apply ms): "
              + ", ".join(f"{lives[i] * 1000:.0f}/{commits[i] * 1000:.0f}/{applies[i] * 1000:.0f}" for i in slow))
        p50, p99 = pct(lives, 50) * 1000, pct(lives, 99) * 1000
        print(f"one flow change at {args.tenants} tenants: commit p50 {pct(commits, 50) * 1000:.1f} ms; "
              f"commit -> live (AMI acknowledged) p50 {p50:.1f} ms p99 {p99:.1f} ms (budget 100 ms)")
        verdicts.below("one flow change: commit -> live in Asterisk p99", p99, LIVE_BUDGET_MS, "ms")
        verdicts.info("one flow change: commit -> live p50", p50, "ms")
        verdicts.info("full dialplan reload p50 / one flow change p99", pct(reloads, 50) * 1000 / p99, "x")

        # ---- the new route answers a call (SIPp start-up measured on an unchanged route)
        if args.calls:
            base, answered = [], []
            for i in range(args.calls):
                tid, prefix, did, number = rows[(i * 53 + 11) % len(rows)]
                t0 = time.perf_counter()
                ok = await asyncio.to_thread(sipp, asterisk, carrier_dtmf_scenario("", wait_ms=1, hold_ms=1), number)
                base.append(time.perf_counter() - t0) if getattr(ok, "returncode", 1) == 0 else None
                t0 = time.perf_counter()
                await flows.route_did(partner["id"], tid, did, RouteBody(
                    destination=DestinationBody(kind="ivr", ref=made[tid]["ivr"])))
                await applier.wait_applied(tid, timeout=10)
                ok = await asyncio.to_thread(sipp, asterisk, carrier_dtmf_scenario("", wait_ms=1, hold_ms=1), number)
                if getattr(ok, "returncode", 1) == 0:
                    answered.append(time.perf_counter() - t0)
            verdicts.exactly(f"calls not answered by the new route, of {args.calls}", args.calls - len(answered), 0)
            if answered and base:
                sipp_s = pct(base, 50)
                print(f"commit -> SIPp call answered by the new route: p50 {pct(answered, 50) * 1000:.0f} ms "
                      f"(SIPp call alone, unchanged route: p50 {sipp_s * 1000:.0f} ms)")
                verdicts.info("commit -> call answered, minus SIPp alone, p50",
                              (pct(answered, 50) - sipp_s) * 1000, "ms")
        runner.cancel()
        await ami.close()
        await client.close()
        await pool.close()
    finally:
        if asterisk is not None:
            asterisk.stop()
        pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--reloads", type=int, default=3)
    parser.add_argument("--calls", type=int, default=10)
    sys.exit(asyncio.run(main(parser.parse_args())))
