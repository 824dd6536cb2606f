"""Issue 14, Must show 1, end to end: a real Asterisk, SIPp, PostgreSQL and localstripe, the
daemon in-process with every plugin, driven over its RPC.

Create a partner (TRIAL); add a card; activate (the prorated platform fee and the initial
wallet credit charged, the wallet credited); buy a number (the wallet pays the setup fee);
place a rated call (the wallet pays its wholesale price); add 3 extensions and 2 DIDs; run the
cycle job twice (one set of monthly unit fees, prorated from the day each unit came); the
history and its CSV show every entry typed; the balance equals the sum of the entries.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest
from harness import calls_config, daemon_beside, free_port
from localstripe_support import LocalStripe, localstripe  # noqa: F401  (the module's fixture)
from tenants_e2e import uas_scenario
from test_limits import Uac, uas, wait_for

from cdr_ingest.tiers import DEFAULT_SCHEDULE, Tier
from controlplane.account.cycle import prorate
from controlplane.account.jobs import run_cycle
from controlplane.profiles.models import AssignmentBody
from controlplane.profiles.services import ProfileServices
from controlplane.config import AccountConfig, HttpConfig
from controlplane.numbers.pricing import SETUP_FEE_MICROS
from controlplane.payments.charges import idempotency_key
from controlplane.tenants.http import tenant_services

pytestmark = [pytest.mark.e2e]
SERVICE, PLATFORM = "service-token-account-e2e", "platform-token-account-e2e"
LOCAL = "5015550100"  # a local, billable destination: the carrier UAS answers it
NUMBERS = ["+15015550301", "+15015550302", "+18885550303"]  # one bought first, then two more (one toll-free)
CREDIT = 25_000_000


@dataclass
class World:
    pool: asyncpg.Pool
    app: Any
    base: str
    sip_port: int
    stripe: LocalStripe
    payments: Any

    async def rpc(self, method: str, path: str, *, partner: str | None = None, platform: bool = False,
                  json: Any = None, data: str | None = None, headers: dict[str, str] | None = None
                  ) -> tuple[int, Any]:
        sent = {"Authorization": f"Bearer {PLATFORM if platform else SERVICE}", **(headers or {})}
        if partner is not None:
            sent["X-Partner-Id"] = partner
        if data is not None:
            sent["Content-Type"] = "text/csv"
        async with aiohttp.ClientSession() as http, http.request(method, self.base + path, json=json, data=data,
                                                                 headers=sent) as response:
            text = await response.text()
            body = await response.json(content_type=None) if "json" in response.content_type else text
            return response.status, body


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, database_dsn: str, pool: asyncpg.Pool,
                localstripe: LocalStripe) -> AsyncIterator[World]:
    config = calls_config(tmp_path_factory.mktemp("account"), instance=f"account{os.getpid()}",
                          dsn=database_dsn,
                          http=HttpConfig(port=free_port(), service_token=SERVICE, platform_token=PLATFORM),
                          payments=localstripe.config(),
                          # The test runs the cycle job itself (twice); the daemon's own run waits an hour.
                          account=AccountConfig(unit_fee_interval_s=3600.0, trial_expiry_interval_s=3600.0))
    async with daemon_beside(config, database_dsn) as beside:
        beside.procs.append(uas(config.carrier.port, uas_scenario(bye_timeout_ms=60_000)))
        yield World(pool, beside.app, f"http://127.0.0.1:{config.http.port}", config.asterisk.sip_port,
                    localstripe, beside.daemon.context.payments)


async def test_trial_card_activation_number_call_units_cycle_history_balance(world: World) -> None:
    # a partner -> TRIAL
    status, partner = await world.rpc("POST", "/v1/partners", json={"name": "Acme Voice", "tier": "STARTER"})
    assert status == 201, partner
    pid = partner["id"]
    status, account = await world.rpc("GET", "/v1/account", partner=pid)
    assert (status, account["status"], account["trial_days_left"]) == (200, "TRIAL", 14)

    # a card, then activation: the prorated platform fee plus the initial credit, once, to the card
    status, method = await world.rpc("POST", "/v1/account/payment-methods", partner=pid,
                                     json={"payment_method_id": world.stripe.card()})
    assert status == 201, method
    status, activation = await world.rpc("POST", "/v1/account/activation", partner=pid)
    assert status == 201, activation
    activated_at = datetime.fromisoformat(activation["account"]["activated_at"])
    starter = DEFAULT_SCHEDULE.prices_at(Tier.STARTER, activated_at)
    assert starter is not None and starter.monthly_fee is not None
    fee = prorate(starter.monthly_fee, activated_at)
    assert (activation["platform_fee_micros"], activation["wallet_credit_micros"]) == (fee, CREDIT)
    [intent] = world.stripe.intents_for(idempotency_key(pid, f"activation:{pid}"))
    assert (intent.amount, intent.status) == ((fee + CREDIT) // 10_000, "succeeded")
    status, wallet = await world.rpc("GET", "/v1/wallet", partner=pid)
    assert wallet["balance_micros"] == CREDIT

    # a tenant with an extension, then a number bought: the wallet pays the setup fee
    status, tenant = await world.rpc("POST", "/v1/tenants", partner=pid,
                                     json={"name": "Dental", "billing_email": "b@x.co", "sip_prefix": "acct",
                                           "status": "ACTIVE"})
    assert status == 201, tenant
    status, ext = await world.rpc("POST", f"/v1/tenants/{tenant['id']}/extensions", partner=pid,
                                  json={"number": "101", "display_name": "Front desk"})
    assert status == 201, ext
    inventory = "number,state,city,rate_center\n" + "".join(f"{n},AR,Little Rock,LITTLE ROCK\n" for n in NUMBERS)
    assert (await world.rpc("POST", "/v1/number-inventory", platform=True, data=inventory))[0] == 201
    status, bought = await world.rpc("POST", "/v1/numbers/purchase", partner=pid, json={"numbers": NUMBERS[:1]})
    assert status == 201, bought
    status, wallet = await world.rpc("GET", "/v1/wallet", partner=pid)
    assert wallet["balance_micros"] == CREDIT - SETUP_FEE_MICROS

    # a rated call: the wallet pays its wholesale price
    await ProfileServices(world.pool).assign(pid, tenant["id"], AssignmentBody(
        per_minute_micros=50_000, min_seconds=6, increment_seconds=6))
    await world.app[tenant_services].applier.apply_dialplan(force=True)
    user, password = ext["sip_username"], ext["secrets"]["sip_password"]
    result = await asyncio.to_thread(Uac(world.sip_port, user, password, LOCAL, 2.0).run)
    assert result.code == 200, result

    async def rated() -> asyncpg.Record | None:
        return await world.pool.fetchrow(  # type: ignore[no-any-return]
            "SELECT r.wholesale_micros, e.amount, e.kind FROM call_records r JOIN wallet_entries e"
            " ON e.reference = 'call:' || r.id WHERE r.tenant_id = $1", tenant["id"])
    call = await wait_for(rated, 30, "the call's record and its wallet entry")
    assert call["wholesale_micros"] > 0 and call["amount"] == -call["wholesale_micros"]
    assert call["kind"] == "usage_local"

    # 3 more extensions and 2 more DIDs (one toll-free)
    for number in ("102", "103", "104"):
        assert (await world.rpc("POST", f"/v1/tenants/{tenant['id']}/extensions", partner=pid,
                                json={"number": number, "display_name": number}))[0] == 201
    status, more = await world.rpc("POST", "/v1/numbers/purchase", partner=pid, json={"numbers": NUMBERS[1:]})
    assert status == 201, more

    # the cycle job twice: one set of monthly fees, each prorated from the day its unit came
    now = datetime.now(UTC)
    first = await run_cycle(world.pool, world.payments, now)
    second = await run_cycle(world.pool, world.payments, now)
    assert first.errors == [] and (first.unit_entries, second.unit_entries) == (7, 0)
    fees = await world.pool.fetch("SELECT reference, kind, amount FROM wallet_entries WHERE partner_id = $1"
                                  " AND reference LIKE 'fee:%' ORDER BY reference", pid)
    units = await world.pool.fetch(
        "SELECT e.id, 'monthly_extension' AS kind, e.created_at FROM extensions e WHERE e.tenant_id = $1"
        " UNION ALL SELECT d.id, 'monthly_did_' || d.kind, d.created_at FROM dids d WHERE d.partner_id = $2",
        tenant["id"], pid)
    full = {"monthly_extension": starter.per_extension, "monthly_did_local": starter.did_local_monthly,
            "monthly_did_toll_free": starter.did_toll_free_monthly}
    cycle = f"{now:%Y-%m}"
    expected = sorted((f"fee:{cycle}:{'ext' if u['kind'] == 'monthly_extension' else 'did'}:{u['id']}", u["kind"],
                       -prorate(full[u["kind"]] or 0, max(u["created_at"], activated_at))) for u in units)
    assert sorted((f["reference"], f["kind"], f["amount"]) for f in fees) == expected
    assert {f["kind"] for f in fees} == {"monthly_extension", "monthly_did_local", "monthly_did_toll_free"}

    # history and CSV: every entry typed; the balance is the sum of the entries
    status, page = await world.rpc("GET", "/v1/wallet/entries?limit=100", partner=pid)
    assert status == 200, page
    entries = page["items"]
    kinds = {e["kind"] for e in entries}
    assert kinds == {"top_up", "setup_fee", "usage_local", "monthly_extension", "monthly_did_local",
                     "monthly_did_toll_free"}, kinds
    assert len(entries) == 1 + 3 + 1 + 7
    status, text = await world.rpc("GET", "/v1/wallet/entries?format=csv", partner=pid)
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["kind"] for r in rows) == sorted(e["kind"] for e in entries)
    assert all(r["kind"] for r in rows)
    status, wallet = await world.rpc("GET", "/v1/wallet", partner=pid)
    assert wallet["balance_micros"] == sum(e["amount_micros"] for e in entries) \
        == sum(int(r["amount_micros"]) for r in rows)
    assert await world.pool.fetch("SELECT * FROM wallet_mismatches()") == []
