"""Acting-user benchmark: what ``X-Acting-User`` costs the portal's requests.

Run: .venv/bin/python bench/bench_acting_user.py [--requests 4000] [--seconds 15]
(starts its own PostgreSQL; about half a minute)

The full stack (tenants, API keys, audit and team plugins) serves ``GET /v1/tenants/{id}``
to the portal's service token, from its own process, at 50 concurrent clients (bench_api's
load client): without the header, with ``X-Acting-User`` naming an ACTIVE Partner Admin
(the guard resolves the role through the team's cache, 10 s TTL), and the same with the
cache off (``team.acting_user_cache_seconds: 0``: one PostgreSQL lookup per request), which
shows what the cache saves. Each load runs twice, interleaved; its figures are over both rounds
(the rate over their summed time).
Target: the header costs at most 15% of the portal's request rate.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import asyncpg  # noqa: E402
from bench_api import Run, _listen, load, merged, migrated_database  # noqa: E402
from verdict import Verdicts  # noqa: E402

TOKEN = "bench-token"
PARTNER, TENANT, USER = "ptr_bench", "ten_bench", "usr_0123456789abcdef"
TARGET_RATIO = 0.85


def _serve(dsn: str, cache_seconds: float, port_out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from controlplane.apikeys.plugin import PLUGIN as APIKEYS
    from controlplane.audit.plugin import PLUGIN as AUDIT
    from controlplane.config import Config, TeamConfig, WebhooksConfig
    from controlplane.http.app import make_app
    from controlplane.plugins import Context
    from controlplane.team.plugin import PLUGIN as TEAM
    from controlplane.tenants.plugin import PLUGIN as TENANTS

    async def main() -> None:
        pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
        config = Config(webhooks=WebhooksConfig(secret_key="bench"),
                        team=TeamConfig(acting_user_cache_seconds=cache_seconds))
        app = make_app(service_token_value=TOKEN, probes=[], plugins=[TENANTS, APIKEYS, AUDIT, TEAM],
                       context=Context(config=config, pool=pool))
        await _listen(app, port_out)

    asyncio.run(main())


async def prepare(dsn: str) -> None:
    """A partner, a tenant and an ACTIVE Partner Admin (through the team's service)."""
    from controlplane.shared.actor import TeamRole
    from controlplane.team.models import TeamUserCreate
    from controlplane.team.services import TeamServices

    async def no_mail(*args: object, **kwargs: object) -> bool:
        raise AssertionError("an active user gets no invitation")

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None
    await pool.execute("INSERT INTO partners (id, name, tier) VALUES ($1, 'Bench', 'ENTERPRISE')", PARTNER)
    await pool.execute("INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status)"
                       " VALUES ($1, $2, 'Bench Co', 'benchco', 'b@bench.co', 'ACTIVE')", TENANT, PARTNER)
    user = await TeamServices(pool, no_mail, "http://x/{token}").invite(
        PARTNER, TeamUserCreate(email="admin@bench.co", name="Admin", role=TeamRole.PARTNER_ADMIN, activate=True),
        None)
    await pool.execute("UPDATE partner_users SET id = $1 WHERE id = $2", USER, user.id)
    await pool.close()


async def main(requests: int, seconds: float) -> int:
    async with migrated_database("bench_acting") as (dsn, procs):
        await prepare(dsn)
        ctx = multiprocessing.get_context("spawn")
        ports = {}
        for cache_seconds in (10.0, 0.0):
            queue: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
            proc = ctx.Process(target=_serve, args=(dsn, cache_seconds, queue), daemon=True)
            proc.start()
            procs.append(proc)
            ports[cache_seconds] = queue.get(timeout=60)
        url = "http://127.0.0.1:{}/v1/tenants/" + TENANT
        portal = {"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": PARTNER}
        acting = {**portal, "X-Acting-User": USER}
        runs: dict[str, list[Run]] = {"none": [], "cached": [], "uncached": []}
        for _ in range(2):
            runs["none"].append(await load(url.format(ports[10.0]), portal, requests, seconds))
            runs["cached"].append(await load(url.format(ports[10.0]), acting, requests, seconds))
            runs["uncached"].append(await load(url.format(ports[0.0]), acting, requests, seconds))
    # each side over both its rounds (bench_api's rule: the rate over their summed time)
    sides = {name: merged(results) for name, results in runs.items()}
    for name, label in (("none", "portal, no X-Acting-User"), ("cached", "portal + X-Acting-User (cached)"),
                        ("uncached", "portal + X-Acting-User (no cache)")):
        r = sides[name]
        print(f"{label:<36} {r['rps']:,.0f} req/s  p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms")
    verdicts = Verdicts("bench_acting_user")
    verdicts.info("portal GET without X-Acting-User", sides["none"]["rps"], "req/s")
    verdicts.info("portal GET with X-Acting-User, cached role", sides["cached"]["rps"], "req/s")
    verdicts.info("portal GET with X-Acting-User, no cache", sides["uncached"]["rps"], "req/s")
    verdicts.at_least("with header (cached) / without", sides["cached"]["rps"] / sides["none"]["rps"], TARGET_RATIO)
    errors = sum(int(figures["errors"]) for figures in sides.values())
    verdicts.exactly("answers other than 200", errors, 0)
    return verdicts.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.requests, args.seconds)))
