"""Liveness and readiness: is the process up, and can it do its job."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

PROBE_TIMEOUT = 2.0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str


class Probe(Protocol):
    name: str

    async def check(self) -> ProbeResult: ...


probes_key = web.AppKey("probes", list[Probe])


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    probes = request.app[probes_key]
    results = await asyncio.gather(*(_run(p) for p in probes))
    checks = {p.name: {"ok": r.ok, "detail": r.detail} for p, r in zip(probes, results)}
    ready = all(r.ok for r in results)
    return web.json_response({"status": "ready" if ready else "not_ready", "checks": checks},
                             status=200 if ready else 503)


async def _run(probe: Probe) -> ProbeResult:
    try:
        return await asyncio.wait_for(probe.check(), PROBE_TIMEOUT)
    except TimeoutError:
        return ProbeResult(False, f"no answer within {PROBE_TIMEOUT:g} s")
    except Exception as exc:  # a probe failing is a state to report, not a crash
        return ProbeResult(False, f"{type(exc).__name__}: {exc}")
