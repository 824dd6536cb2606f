"""The partner's account in the call path on a real Asterisk (issue 14, Must show 3 and 5):
a zero wallet refuses billable calls at admission (403) while 911 goes out, the operator's
adjustment admits the next call; a trial that expired (the account capability's job)
suspends the partner's tenants (calls in progress end; outbound 403, inbound not connected
to the extension, 911 connected) until activation; a trial may not dial international;
20 simultaneous calls against 60 s of wholesale credit overshoot by at most one increment.

The daemon runs in-process with every plugin (admission over FastAGI, the recorder, the
wallet's balance notices); phones are the small digest UAC of test_limits; the carrier, the
emergency trunk and the relay are SIPp UASes that keep every call up.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
import asyncpg
import pytest
from harness import calls_config, daemon_beside, free_port
from account_support import activate_and_fund, session_requester
from inventory_support import buy_did
from tenants_e2e import call_scenario, sipp, uas_scenario
from test_limits import ADDRESS, CallResult, Uac, _register_answering, uas, wait_for

from cdr_ingest.classify import CallClass, Direction
from cdr_ingest.pricing import partner_rate
from cdr_ingest.rating import price
from cdr_ingest.tiers import Tier
from controlplane.profiles.models import AssignmentBody
from controlplane.profiles.services import ProfileServices
from controlplane.account.jobs import run_trial_expiry
from controlplane.config import AccountConfig, HttpConfig
from controlplane.limits.engine import Engine
from controlplane.limits.http import limit_services
from controlplane.numbers.e911_services import E911Services
from controlplane.numbers.http import number_services
from controlplane.numbers.pricing import SETUP_FEE_MICROS
from controlplane.signals import Signals
from controlplane.tenants.applier import Applier
from controlplane.tenants.http import numbering_services, tenant_services
from controlplane.tenants.models import ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate

pytestmark = [pytest.mark.e2e]
LOCAL = "5015550100"  # local, billable: the partner's (BUSINESS) wholesale rate prices it
INTERNATIONAL = "011442071234567"
PLATFORM_TOKEN = "platform-token-wallet-e2e"
# prefix -> the DID its extension 101 owns (E911 registered: 911 takes the emergency trunk).
DIDS = {"zero": "+15015550201", "expd": "+15015550202"}


@dataclass
class World:
    pool: asyncpg.Pool
    app: Any
    signals: Signals
    http_port: int
    sip_port: int
    partners: dict[str, str]  # prefix -> partner id (one partner per tenant)
    tenants: dict[str, str]  # prefix -> tenant id
    passwords: dict[str, str]
    procs: list[subprocess.Popen[bytes]]
    carrier_endpoint: str
    running: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        engine: Engine = self.app[limit_services].engine
        return engine

    @property
    def applier(self) -> Applier:
        applier: Applier = self.app[tenant_services].applier
        return applier

    async def call(self, prefix: str, number: str, hold_s: float = 0.0) -> CallResult:
        user = f"{prefix}_101"
        return await asyncio.to_thread(Uac(self.sip_port, user, self.passwords[user], number, hold_s).run)

    async def adjust(self, prefix: str, amount: int, reference: str) -> int:
        """The platform operator's manual adjustment (POST /v1/wallet/adjustments): a ledger entry;
        the balance after it."""
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{self.http_port}/v1/wallet/adjustments",
                                 json={"partner_id": self.partners[prefix], "amount_micros": amount,
                                       "reason": "wire transfer received", "reference": reference},
                                 headers={"Authorization": f"Bearer {PLATFORM_TOKEN}"}) as response:
                body = await response.json()
                assert response.status == 201, body
        balance: int = body["balance_micros"]
        return balance

    async def activate(self, prefix: str, micros: int = 0) -> int:
        """The platform's comp activation (POST /v1/partners/{id}/activation), then ``micros`` adjusted in
        (tests/support/account_support.py); waits for the re-render the status signal asks for."""
        async with aiohttp.ClientSession() as http:
            funded = await activate_and_fund(session_requester(http, f"http://127.0.0.1:{self.http_port}"),
                                             self.partners[prefix], platform_token=PLATFORM_TOKEN, micros=micros)
        await self.applier.wait_applied(15)  # partner_status_changed -> the tenants' applier
        return funded.balance_micros

    async def expire_trial(self, prefix: str) -> None:
        """14 days pass for this partner only (its trial end moved to the past), then the account
        capability's trial-expiry job runs (the daemon runs it too, on its own schedule)."""
        partner = self.partners[prefix]
        await self.pool.execute("UPDATE partners SET trial_ends_at = now() - interval '1 second' WHERE id = $1",
                                partner)
        await run_trial_expiry(self.pool, self.signals.partner_status_changed, datetime.now(UTC))
        assert await self.pool.fetchval("SELECT status FROM partners WHERE id = $1", partner) == "SUSPENDED"
        await self.applier.wait_applied(15)

    async def balance_seen(self, prefix: str, balance: int) -> None:
        """Admission knows ``balance`` (the wallet's notice), without a call asking."""
        async def seen() -> bool:
            state = self.engine.partners.get(self.partners[prefix])
            return state is not None and state.balance_micros == balance
        await wait_for(seen, 10, f"admission to see the balance {balance} of {prefix}")

    async def emergency_reached(self, prefix: str) -> str:
        async def reached() -> str | None:
            return await self.pool.fetchval(  # type: ignore[no-any-return]
                "SELECT dstchannel FROM asterisk_cdr WHERE dst = '911' AND accountcode = $1"
                " AND disposition = 'ANSWERED' ORDER BY start DESC LIMIT 1", self.tenants[prefix])
        dst: str = await wait_for(reached, 15, f"the 911 CDR of {prefix}")
        assert dst.startswith("PJSIP/cp-emergency-") and "relay" not in dst, dst
        return dst

    async def inbound(self, prefix: str) -> str:
        """The carrier calls the tenant's DID: the channel Asterisk dialled for it ('' = none)."""
        before = await self._inbound_cdrs(prefix)
        await asyncio.to_thread(sipp, SimpleNamespace(sip_port=self.sip_port),  # type: ignore[arg-type]
                                call_scenario(auth=False, hold_ms=1500), DIDS[prefix], timeout="30s")

        async def recorded() -> list[asyncpg.Record] | None:
            rows = await self._inbound_cdrs(prefix)
            return rows[len(before):] or None
        (row, *_) = await wait_for(recorded, 15, f"the inbound CDR of {prefix}")
        return str(row["dstchannel"] or "")

    async def _inbound_cdrs(self, prefix: str) -> list[asyncpg.Record]:
        """Calls from the carrier (one at a time in this module). Not by tenant: a suspended
        tenant's DID goes from the carrier's context straight to the announcement, never
        through the tenant's context that sets the account code."""
        return await self.pool.fetch("SELECT dstchannel FROM asterisk_cdr WHERE channel LIKE $1 ORDER BY start",
                                     f"PJSIP/{self.carrier_endpoint}-%")


def wholesale_local() -> Any:
    rate = partner_rate(Tier.BUSINESS, CallClass.LOCAL, Direction.OUTBOUND, "1" + LOCAL, datetime.now(UTC))
    assert rate is not None
    return rate


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, database_dsn: str,
                pool: asyncpg.Pool) -> AsyncIterator[World]:
    config = calls_config(tmp_path_factory.mktemp("wallet"), instance=f"wallet{os.getpid()}",
                          dsn=database_dsn, emergency=True,
                          http=HttpConfig(port=free_port(), service_token="t", platform_token=PLATFORM_TOKEN),
                          # The account's jobs run once at start (no partner yet), then not during the
                          # module: monthly unit fees would move the balances these tests count in
                          # micro-units, and the trial's expiry is driven by its test.
                          account=AccountConfig(unit_fee_interval_s=3600.0, trial_expiry_interval_s=3600.0))
    async with daemon_beside(config, database_dsn) as beside:
        app, procs = beside.app, beside.procs
        tenants = app[tenant_services]
        numbering = app[numbering_services]
        partners, ids, passwords = {}, {}, {}
        for prefix in ("zero", "expd", "trial", "race"):
            partner = (await tenants.create_partner(PartnerCreate(name=prefix, tier=PartnerTier.BUSINESS))).id
            t = await tenants.create_tenant(partner, TenantCreate(name=prefix, billing_email="x@y.co",
                                                                  sip_prefix=prefix))
            partners[prefix], ids[prefix] = partner, t.id
            ext = await numbering.create_extension(partner, t.id, ExtensionCreate(number="101", display_name="U"))
            passwords[ext.sip_username] = ext.secrets.sip_password
            await ProfileServices(pool).assign(partner, t.id, AssignmentBody(per_minute_micros=50_000, min_seconds=60,
                                                                      increment_seconds=6))
        w = World(pool, app, beside.daemon.context.signals, config.http.port, config.asterisk.sip_port, partners,
                  ids, passwords, procs, config.carrier.endpoint)
        # New partners are in TRIAL (migration 0013); "zero" is activated with an empty wallet
        # (its DID's setup fee is credited then drawn: buy_did), "race" is funded in its test.
        await w.activate("zero")
        await w.activate("race")
        for prefix, number in DIDS.items():
            ext_id = await pool.fetchval("SELECT id FROM extensions WHERE tenant_id = $1", ids[prefix])
            did = await buy_did(pool, partners[prefix], number, tenant_id=ids[prefix], extension_id=ext_id,
                                numbering=numbering)
            await E911Services(app[number_services]).register(partners[prefix], did, ADDRESS)
        await tenants.applier.apply_dialplan(force=True)
        procs += [uas(config.carrier.port, uas_scenario(bye_timeout_ms=300_000)),
                  uas(config.emergency.trunk_port, uas_scenario(bye_timeout_ms=60_000)),
                  uas(config.emergency.relay_port, uas_scenario(bye_timeout_ms=60_000))]
        yield w


# ---------------------------------------------------------------- Must show 3

async def test_a_partner_at_zero_balance_refused_911_out_credit_admits(world: World) -> None:
    balance = await world.pool.fetchval("SELECT COALESCE(sum(amount), 0) FROM wallet_entries WHERE partner_id = $1",
                                        world.partners["zero"])
    assert balance == 0, "the DID's setup fee was credited and debited: the wallet is at zero"
    refused = await world.call("zero", LOCAL, hold_s=1)
    assert refused.code == 403, refused
    state = world.engine.partners[world.partners["zero"]]
    assert state.status.value == "ACTIVE" and state.available(0.0) <= 0
    assert (await world.call("zero", "911", hold_s=1)).code == 200
    await world.emergency_reached("zero")
    after = await world.adjust("zero", 1_000_000, "wire-zero-1")  # $1
    assert after == 1_000_000
    await world.balance_seen("zero", after)  # the wallet's notice, before any call asks
    admitted = await world.call("zero", LOCAL, hold_s=2)
    assert admitted.code == 200, admitted


async def test_trial_may_not_dial_international_but_calls_locally_with_an_empty_wallet(world: World) -> None:
    assert await world.pool.fetchval("SELECT status FROM partners WHERE id = $1", world.partners["trial"]) == "TRIAL"
    assert (await world.call("trial", INTERNATIONAL, hold_s=1)).code == 403
    assert (await world.call("trial", LOCAL, hold_s=1)).code == 200  # nothing drawn in trial


async def test_an_expired_trial_suspends_service_911_aside_and_activation_restores(world: World) -> None:
    phone = await _register_answering(world, "expd_101")  # type: ignore[arg-type]
    assert (await world.call("expd", LOCAL, hold_s=1)).code == 200  # a trial calls
    assert (await world.inbound("expd")).startswith("PJSIP/expd_101-")
    phone.wait(30)
    uac = Uac(world.sip_port, "expd_101", world.passwords["expd_101"], LOCAL, 60)
    in_progress = asyncio.create_task(asyncio.to_thread(uac.run))
    assert await asyncio.to_thread(uac.answered.wait, 15), "the call was not answered"
    expired_at = time.monotonic()
    await world.expire_trial("expd")
    ended = await asyncio.wait_for(in_progress, 30)  # a suspended partner's calls in progress end
    assert ended.ended_by == "asterisk" and ended.ended_at is not None and ended.ended_at - expired_at < 10, ended
    assert (await world.call("expd", LOCAL, hold_s=1)).code == 403
    phone = await _register_answering(world, "expd_101")  # type: ignore[arg-type]
    assert await world.inbound("expd") == "", "the DID must not reach the extension"
    assert phone.poll() is None, "the extension's phone was rung"
    assert (await world.call("expd", "911", hold_s=1)).code == 200
    await world.emergency_reached("expd")
    # Activation draws the setup fee of the number bought in trial; the operator funds the rest.
    assert await world.activate("expd", SETUP_FEE_MICROS + 10_000_000) > 0
    assert (await world.call("expd", LOCAL, hold_s=1)).code == 200
    assert (await world.inbound("expd")).startswith("PJSIP/expd_101-")


# ---------------------------------------------------------------- Must show 5

async def test_twenty_simultaneous_calls_against_sixty_seconds_of_credit(world: World) -> None:
    rate = wholesale_local()
    credit = price(rate, 60)
    increment = price(rate, rate.min_seconds + rate.increment_seconds) - price(rate, rate.min_seconds)
    await world.engine.tenant(world.tenants["race"])  # known to admission: the credit arrives by notice
    assert await world.adjust("race", credit, "wire-race-1") == credit
    await world.balance_seen("race", credit)
    results = await asyncio.gather(*(world.call("race", LOCAL, hold_s=90) for _ in range(20)))
    codes = sorted(r.code for r in results)
    # The first admitted call holds the whole credit (its 60 s cut-off at the wholesale rate).
    assert codes == [200] + [403] * 19, codes
    (admitted,) = [r for r in results if r.code == 200]
    assert admitted.ended_by == "asterisk" and 57 <= admitted.duration <= 62, admitted  # L(59000)

    async def recorded() -> list[asyncpg.Record] | None:
        rows = await world.pool.fetch("SELECT wholesale_micros, billable_s FROM call_records"
                                      " WHERE tenant_id = $1 AND disposition = 'ANSWERED'", world.tenants["race"])
        return rows if len(rows) == codes.count(200) else None
    rows = await wait_for(recorded, 20, "the admitted calls' records")
    billed = sum(r["wholesale_micros"] or 0 for r in rows)
    assert 0 < billed <= credit + increment, (billed, credit, increment, [dict(r) for r in rows])
    # What the calls drew from the wallet (the account's monthly unit fees may be drawn too: not calls).
    drawn = -await world.pool.fetchval("SELECT COALESCE(sum(amount), 0) FROM wallet_entries"
                                       " WHERE partner_id = $1 AND kind LIKE 'usage_%'", world.partners["race"])
    assert drawn == billed, (drawn, billed)
