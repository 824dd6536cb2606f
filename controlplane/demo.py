"""``controlplane demo``: the whole stack, one tenant, one phone, one real call.

Brings the daemon up as ``serve`` does, creates a partner, a tenant and an
extension through the RPC, registers the extension with SIPp, calls the echo
test (*43) for two seconds and prints what the daemon saw. Everything it
started is stopped again; the demo data stays in the database.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from typing import Any

import aiohttp

from controlplane.calls.plugin import tracker_key
from controlplane.config import Config
from controlplane.daemon import running
from controlplane.sipp import Phone, call_scenario, register_scenario


async def demo(config: Config) -> int:
    if shutil.which("sipp") is None:
        print("demo: SIPp is needed (Debian package sip-tester; scripts/install.sh installs it)")
        return 1
    async with running(config) as daemon:
        base = f"http://{config.http.host}:{config.http.port}"
        headers = {"Authorization": f"Bearer {daemon.service_token}"}
        async with aiohttp.ClientSession(base, headers=headers) as rpc:
            ready = await _wait_ready(rpc)
            print(f"readyz: {ready['status']} {_checks(ready)}")
            suffix = secrets.token_hex(2)
            partner = await _call(rpc, "POST", "/v1/partners",
                                  {"name": f"Demo Reseller {suffix}", "tier": "STARTER"})
            rpc.headers["X-Partner-Id"] = partner["id"]
            tenant = await _call(rpc, "POST", "/v1/tenants", {
                "name": f"Demo Dental {suffix}", "billing_email": "billing@example.com",
                "status": "ACTIVE"})
            ext = await _call(rpc, "POST", f"/v1/tenants/{tenant['id']}/extensions",
                              {"number": "101", "display_name": "Front desk"})
        print(f"tenant {tenant['name']} (prefix {tenant['sip_prefix']}), extension 101 "
              f"as SIP user {ext['sip_username']}")
        phone = Phone(ext["sip_username"], ext["secrets"]["sip_password"], config.asterisk.sip_port,
                      config.asterisk.host)
        code, err = await phone.run(register_scenario(), ext["sip_username"])
        print(f"REGISTER: {'200 OK' if code == 0 else 'failed: ' + err}")
        code, err = await phone.run(call_scenario(hold_ms=2000), "*43")
        print(f"call to *43 (echo): {'answered, hung up after 2 s' if code == 0 else 'failed: ' + err}")
        assert daemon.http is not None
        seen = daemon.http.app[tracker_key].recent()
        for s in seen:
            print(f"  seen {s.at:%H:%M:%S.%f} {s.source:3} {s.event:16} call {s.call_id} exten {s.exten}")
        return 0 if code == 0 and seen else 1


async def _call(rpc: aiohttp.ClientSession, method: str, path: str, body: Any = None) -> Any:
    async with rpc.request(method, path, json=body) as response:
        data = await response.json(content_type=None)
        if response.status >= 400 and path != "/readyz":
            raise SystemExit(f"demo: {method} {path} -> {response.status}: {data}")
        return data


async def _wait_ready(rpc: aiohttp.ClientSession, within: float = 15.0) -> Any:
    """The clients connect in the background: give them a moment before reporting."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        ready = await _call(rpc, "GET", "/readyz")
        if ready["status"] == "ready" or asyncio.get_running_loop().time() > deadline:
            return ready
        await asyncio.sleep(0.2)


def _checks(ready: dict[str, Any]) -> str:
    return ", ".join(f"{name} {'up' if c['ok'] else 'down'}" for name, c in ready["checks"].items())
