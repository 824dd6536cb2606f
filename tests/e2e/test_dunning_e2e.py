"""Dunning end to end (issue 15, Must show 4), with a controllable clock: a tenant's card that is
declined when charged -> its invoice Overdue at day 7 -> the tenant SUSPENDED at day 14 (its
outbound call refused with 403, its 911 call connected to the emergency trunk) -> the invoice paid
(the partner's manual "mark as paid") -> ACTIVE again and its next call admitted.

Real Asterisk, SIPp (the carrier, the emergency trunk and relay are UASes that keep every call up),
PostgreSQL and localstripe (the tenant's card, attached through the RPC, charged at issue and on
dunning's retries). The daemon runs in-process with every plugin; the clock is the dunning job's
``now`` argument (``run_dunning``), the rest runs on the wall clock. The invoice is an off-cycle
invoice issued through the RPC (collection charges the card on ``invoice_issued``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from account_support import activate_and_fund, session_requester
from harness import calls_config, daemon_beside, free_port
from inventory_support import buy_did
from localstripe_support import CARD_DECLINED_ON_CHARGE, LocalStripe, localstripe  # noqa: F401  (fixture)
from tenants_e2e import uas_scenario
from test_limits import ADDRESS, CallResult, Uac, uas, wait_for

from controlplane.config import AccountConfig, HttpConfig
from controlplane.dunning.jobs import DunningReport, run_dunning
from controlplane.dunning.retries import retrier
from controlplane.numbers.e911_services import E911Services
from controlplane.numbers.http import number_services
from controlplane.signals import Signals
from controlplane.tenants.applier import Applier
from controlplane.tenants.http import numbering_services, tenant_services
from controlplane.tenants.models import ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate, TenantStatus

pytestmark = [pytest.mark.e2e]
LOCAL = "5015550100"
DID = "+15015550231"
SERVICE_TOKEN = "service-token-dunning-e2e"
PLATFORM_TOKEN = "platform-token-dunning-e2e"
TOTAL = 156_310_000  # $156.31


@dataclass
class World:
    pool: asyncpg.Pool
    app: Any
    signals: Signals
    config: Any
    base: str
    sip_port: int
    partner: str
    tenant: str
    user: str
    password: str
    procs: list[subprocess.Popen[bytes]]

    @property
    def applier(self) -> Applier:
        applier: Applier = self.app[tenant_services].applier
        return applier

    async def rpc(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {SERVICE_TOKEN}", "X-Partner-Id": self.partner}
        async with aiohttp.ClientSession() as http, http.request(method, self.base + path, json=json,
                                                                 headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def call(self, number: str, hold_s: float = 1.0) -> CallResult:
        return await asyncio.to_thread(Uac(self.sip_port, self.user, self.password, number, hold_s).run)

    async def dun(self, now: datetime) -> DunningReport:
        """The dunning job at ``now``, retrying through collection as the daemon's job does."""
        return await run_dunning(self.pool, self.signals, now, retrier(self.pool, self.config, self.signals))

    async def tenant_status(self) -> tuple[str, str | None]:
        row = await self.pool.fetchrow("SELECT status, suspension_cause FROM tenants WHERE id = $1", self.tenant)
        assert row is not None
        return row["status"], row["suspension_cause"]

    async def invoice_status(self, invoice_id: str) -> str:
        return str(await self.pool.fetchval("SELECT status FROM tenant_invoices WHERE id = $1", invoice_id))

    async def emergency_reached(self) -> str:
        async def reached() -> str | None:
            return await self.pool.fetchval(  # type: ignore[no-any-return]
                "SELECT dstchannel FROM asterisk_cdr WHERE dst = '911' AND accountcode = $1"
                " AND disposition = 'ANSWERED' ORDER BY start DESC LIMIT 1", self.tenant)
        dst: str = await wait_for(reached, 15, "the 911 CDR")
        assert dst.startswith("PJSIP/cp-emergency-") and "relay" not in dst, dst
        return dst

    async def charges(self, invoice_id: str) -> list[tuple[int, str]]:
        rows = await self.pool.fetch("SELECT attempt, status FROM collection_charges WHERE invoice_id = $1"
                                     " ORDER BY attempt", invoice_id)
        return [(r["attempt"], r["status"]) for r in rows]


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, database_dsn: str, pool: asyncpg.Pool,
                localstripe: LocalStripe) -> AsyncIterator[World]:  # noqa: F811
    config = calls_config(tmp_path_factory.mktemp("dunning"), instance=f"dunning{os.getpid()}",
                          dsn=database_dsn, emergency=True, payments=localstripe.config(),
                          http=HttpConfig(port=free_port(), service_token=SERVICE_TOKEN,
                                          platform_token=PLATFORM_TOKEN),
                          # The account's jobs would draw unit fees from the wallet meanwhile: not here.
                          account=AccountConfig(unit_fee_interval_s=3600.0, trial_expiry_interval_s=3600.0))
    async with daemon_beside(config, database_dsn) as beside:
        app, procs = beside.app, beside.procs
        tenants, numbering = app[tenant_services], app[numbering_services]
        base = f"http://127.0.0.1:{config.http.port}"
        partner = (await tenants.create_partner(PartnerCreate(name="Dun Voice", tier=PartnerTier.BUSINESS))).id
        async with aiohttp.ClientSession() as http:  # out of trial, with a wallet for the calls' wholesale
            await activate_and_fund(session_requester(http, base), partner, platform_token=PLATFORM_TOKEN,
                                    micros=50_000_000)
        tenant = (await tenants.create_tenant(partner, TenantCreate(
            name="Dental", billing_email="billing@dental.example", sip_prefix="dun",
            status=TenantStatus.ACTIVE))).id
        ext = await numbering.create_extension(partner, tenant, ExtensionCreate(number="101", display_name="Desk"))
        did = await buy_did(pool, partner, DID, tenant_id=tenant, extension_id=ext.id, numbering=numbering)
        await E911Services(app[number_services]).register(partner, did, ADDRESS)
        await tenants.applier.apply_dialplan(force=True)
        procs += [uas(config.carrier.port, uas_scenario(bye_timeout_ms=300_000)),
                  uas(config.emergency.trunk_port, uas_scenario(bye_timeout_ms=60_000)),
                  uas(config.emergency.relay_port, uas_scenario(bye_timeout_ms=60_000))]
        assert beside.daemon.context is not None
        yield World(pool, app, beside.daemon.context.signals, config, base, config.asterisk.sip_port, partner,
                    tenant, ext.sip_username, ext.secrets.sip_password, procs)


async def _issue(world: World) -> tuple[str, datetime]:
    """An off-cycle invoice through the invoices capability's RPC, issued at once (numbered, SENT,
    due after the tenant's net terms; ``invoice_issued`` after commit: collection charges the card)."""
    status, invoice = await world.rpc("POST", "/v1/invoices", json={
        "tenant_id": world.tenant, "issue": True,
        "lines": [{"description": "Service, November", "amount_micros": TOTAL, "kind": "custom"}]})
    assert status == 201, invoice
    assert invoice["status"] == "SENT" and invoice["total_micros"] == TOTAL, invoice
    return str(invoice["id"]), datetime.fromisoformat(invoice["due_at"])


async def test_declined_overdue_suspended_911_paid_active(world: World, localstripe: LocalStripe  # noqa: F811
                                                          ) -> None:
    assert (await world.call(LOCAL)).code == 200, "an active, funded tenant calls"

    # The tenant's card: attached through the RPC (a SetupIntent's payment_method), declined when charged.
    status, method = await world.rpc("POST", f"/v1/tenants/{world.tenant}/payment-methods",
                                     json={"payment_method_id": localstripe.card(CARD_DECLINED_ON_CHARGE)})
    assert status == 201, method

    invoice_id, due = await _issue(world)
    assert due > datetime.now(UTC)

    async def declined_at_issue() -> bool:  # collection's charge at issue (after commit, on its task)
        return await world.charges(invoice_id) == [(1, "DECLINED")]
    await wait_for(declined_at_issue, 15, "the charge at issue declined")
    assert await world.invoice_status(invoice_id) == "SENT"

    def day(n: float) -> datetime:
        return due + timedelta(days=n)

    report = await world.dun(day(1))  # the first retry, declined too
    assert (report.retries, report.overdue, report.suspended) == (1, 0, 0)
    assert await world.charges(invoice_id) == [(1, "DECLINED"), (2, "DECLINED")]

    report = await world.dun(day(7))
    assert (report.overdue, report.suspended) == (1, 0)
    assert await world.invoice_status(invoice_id) == "OVERDUE"
    assert await world.tenant_status() == ("ACTIVE", None)
    assert (await world.call(LOCAL)).code == 200, "overdue, not suspended: still calls"

    report = await world.dun(day(14))
    again = await world.dun(day(14))
    assert (report.suspended, again.suspended) == (1, 0)
    assert await world.tenant_status() == ("SUSPENDED", f"dunning:{invoice_id}")
    suspended = await world.pool.fetch("SELECT body FROM events WHERE tenant_id = $1 AND type = 'tenant.suspended'",
                                       world.tenant)
    assert len(suspended) == 1 and f"dunning:{invoice_id}".encode() in bytes(suspended[0]["body"])
    await world.applier.wait_applied(15)
    refused = await world.call(LOCAL)
    assert refused.code == 403, refused
    assert (await world.call("911")).code == 200
    await world.emergency_reached()

    # The partner marks the invoice paid (a bank transfer): collection -> invoice_paid -> dunning ->
    # reactivation_due -> the tenants capability (the stored cause matches) -> ACTIVE.
    status, paid = await world.rpc("POST", f"/v1/invoices/{invoice_id}/payments",
                                   json={"amount_micros": TOTAL, "reference": "wire-2026-0042"})
    assert status == 201, paid
    assert await world.invoice_status(invoice_id) == "PAID"

    async def reactivated() -> bool:
        return await world.tenant_status() == ("ACTIVE", None)
    await wait_for(reactivated, 15, "the tenant reactivated")
    await world.applier.wait_applied(15)
    admitted = await world.call(LOCAL)
    assert admitted.code == 200, admitted
    assert (await world.dun(day(20))).suspended == 0  # paid: never suspended again for it
