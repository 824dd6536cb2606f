"""Call flows on a real Asterisk with SIPp, the daemon in-process (issue 17, "Must show"):

- a carrier call to a DID -> IVR -> the caller keys 2 as RFC 2833 events -> the destination rings
  and answers (an extension: F3's ring group has its own e2e);
- a time condition forced closed sends the DID's call to its closed destination, and back to the
  open one when the override goes;
- hostile DTMF: an IVR with dial-by-extension, keyed with another tenant's extension number,
  never rings that tenant's phone; keyed with its own tenant's, rings it.

Every change goes through the services (so through tenant_flows_changed and the applier's
AMI path), never through a reload the test asks for.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from flows_support import carrier_dtmf_scenario, dtmf_available, sipp_messages
from harness import Beside, calls_config, daemon_beside, free_port
from inventory_support import buy_did
from phone_world import funded_cast, registered_phone
from tenants_e2e import answer_scenario, sipp_as, sipp_failure

from controlplane.config import HttpConfig
from controlplane.flows.http import services_key
from controlplane.flows.models import DestinationBody, IvrBody, RouteBody, TimeConditionBody
from controlplane.flows.plugin import applier_key
from controlplane.tenants.http import numbering_services, tenant_services

pytestmark = [pytest.mark.e2e]
DID = "+15015550177"


@dataclass
class World:
    beside: Beside
    pool: asyncpg.Pool
    partner: str
    tenants: dict[str, str]
    passwords: dict[str, str]
    did: str
    sip: SimpleNamespace
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, scenario: str, service: str, *, user: str | None = None, port: int | None = None,
            background: bool = True, timeout: str = "60s") -> Any:
        return sipp_as(self.sip, self.beside.procs, self.passwords, scenario, service, user=user, port=port,
                       background=background, timeout=timeout)

    async def answering_phone(self, user: str, timeout_ms: int = 20000) -> subprocess.Popen[bytes]:
        # A UAS has no call before an INVITE: SIPp's global timeout ends a phone that never rings.
        return await registered_phone(self.run, user, answer_scenario(timeout_ms),
                                      timeout=f"{timeout_ms // 1000}s")

    async def applied(self, tenant: str) -> None:
        await self.beside.app[applier_key].wait_applied(self.tenants[tenant], timeout=10)


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, database_dsn: str,
                pool: asyncpg.Pool) -> AsyncIterator[World]:
    if not dtmf_available():
        pytest.fail("sip-tester's RFC 2833 pcaps are missing (/usr/share/sip-tester/dtmf_2833_*.pcap)")
    config = calls_config(tmp_path_factory.mktemp("flows"), instance=f"flows{os.getpid()}", dsn=database_dsn,
                          http=HttpConfig(port=free_port(), service_token="t"))
    async with daemon_beside(config, database_dsn) as beside:
        app = beside.app
        app[applier_key].etc_dir = beside.etc_dir  # the files a full reload reads, as a local run writes
        cast = await funded_cast(app, pool, "Flows", (("facme", ("101", "102")), ("fbeta", ("103",))))
        did = await buy_did(pool, cast.partner, DID, tenant_id=cast.tenants["facme"],
                            numbering=app[numbering_services])
        await app[tenant_services].applier.wait_applied(10)
        yield World(beside, pool, cast.partner, cast.tenants, cast.passwords, did,
                    SimpleNamespace(sip_port=config.asterisk.sip_port))


def dest(kind: str, ref: str = "") -> DestinationBody:
    return DestinationBody(kind=kind, ref=ref)


async def test_did_ivr_dtmf_2_reaches_the_destination(world: World) -> None:
    flows = world.beside.app[services_key]
    acme = world.tenants["facme"]
    ivr = await flows.save_ivr(world.partner, acme, IvrBody(
        name="Main", options={"1": dest("extension", "101"), "2": dest("extension", "102")},
        timeout_destination=dest("hangup"), invalid_destination=dest("hangup")))
    await flows.route_did(world.partner, acme, world.did, RouteBody(destination=dest("ivr", ivr.id)))
    await world.applied("facme")
    phone101 = await world.answering_phone("facme_101", timeout_ms=10000)
    phone102 = await world.answering_phone("facme_102")
    caller = world.run(carrier_dtmf_scenario("2", wait_ms=1500, hold_ms=3000), DID)
    try:
        assert await asyncio.to_thread(caller.wait, 40) == 0, sipp_failure(caller)
    except subprocess.TimeoutExpired:
        raise AssertionError(sipp_messages(caller)) from None
    assert await asyncio.to_thread(phone102.wait, 40) == 0, sipp_failure(phone102)
    assert await asyncio.to_thread(phone101.wait, 40) != 0, "option 1's phone rang on a 2"


async def test_time_condition_override_closed_then_open(world: World) -> None:
    flows = world.beside.app[services_key]
    acme = world.tenants["facme"]
    body = TimeConditionBody(name="Hours", override="closed", open_destination=dest("extension", "101"),
                             closed_destination=dest("extension", "102"))
    tc = await flows.save_time_condition(world.partner, acme, body)
    await flows.route_did(world.partner, acme, world.did, RouteBody(destination=dest("time_condition", tc.id)))
    await world.applied("facme")
    phone102 = await world.answering_phone("facme_102")
    caller = world.run(carrier_dtmf_scenario("", wait_ms=500, hold_ms=2000), DID)
    assert await asyncio.to_thread(caller.wait, 40) == 0, sipp_failure(caller)
    assert await asyncio.to_thread(phone102.wait, 40) == 0, sipp_failure(phone102)
    # override off, hours that never match: closed again by the clock; force open -> 101
    body.override = "open"
    await flows.save_time_condition(world.partner, acme, body, tc.id)
    await world.applied("facme")
    phone101 = await world.answering_phone("facme_101")
    caller = world.run(carrier_dtmf_scenario("", wait_ms=500, hold_ms=2000), DID)
    assert await asyncio.to_thread(caller.wait, 40) == 0, sipp_failure(caller)
    assert await asyncio.to_thread(phone101.wait, 40) == 0, sipp_failure(phone101)


async def test_hostile_dtmf_cannot_reach_another_tenants_extension(world: World) -> None:
    flows = world.beside.app[services_key]
    acme = world.tenants["facme"]
    ivr = await flows.save_ivr(world.partner, acme, IvrBody(
        name="By extension", dial_by_extension=True, max_attempts=1, timeout_seconds=3,
        timeout_destination=dest("hangup"), invalid_destination=dest("hangup")))
    await flows.route_did(world.partner, acme, world.did, RouteBody(destination=dest("ivr", ivr.id)))
    await world.applied("facme")
    beta103 = await world.answering_phone("fbeta_103", timeout_ms=12000)
    caller = world.run(carrier_dtmf_scenario("103", wait_ms=1000, hold_ms=6000), DID)
    assert await asyncio.to_thread(caller.wait, 40) == 0, sipp_failure(caller)  # hung up by the IVR
    # beta's phone never got an INVITE: its scenario times out waiting for one
    assert await asyncio.to_thread(beta103.wait, 40) != 0
    # the tenant's own extension, keyed the same way (ended with '#', else Read waits its timeout), rings
    phone102 = await world.answering_phone("facme_102")
    caller = world.run(carrier_dtmf_scenario("102#", wait_ms=1000, hold_ms=4000), DID)
    assert await asyncio.to_thread(caller.wait, 40) == 0, sipp_failure(caller)
    assert await asyncio.to_thread(phone102.wait, 40) == 0, sipp_failure(phone102)
