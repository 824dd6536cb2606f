"""Numbers against a real PostgreSQL: inventory, search, purchase (one buyer), assignment
limits, bulk with dry-run, CNAM and E911 status, porting with encrypted PIN, events."""

from __future__ import annotations

import asyncio
from datetime import date

import asyncpg
import pytest

from controlplane.http.problems import Problem
from controlplane.numbers.e911_services import E911Services
from controlplane.numbers.models import BulkRequest, E911Address, PortAction, PortCreate
from controlplane.numbers.ports import PortServices
from controlplane.numbers.services import NumberServices
from controlplane.shared.pagination import PageRequest
from controlplane.tenants.applier import Applier
from controlplane.tenants.models import ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate
from controlplane.tenants.numbering import NumberingServices
from controlplane.tenants.services import TenantServices
from controlplane.secret_box import SecretBox
from controlplane.numbers.carrier import BuiltinCarrier
from controlplane.wallet import store as wallet_store
from wallet_support import active_funded, fund, ledger_mismatches

INVENTORY = ("npa,nxx,first,last,state,city,rate_center\n501,555,0,99,AR,Little Rock,LTLROCK\n"
             "479,444,0,9,AR,Fort Smith,FTSMITH\n877,687,3660,3669,,,\n888,555,1000,1000,,,\n")
ADDRESS = E911Address(street="1234 Main St", unit="Suite 200", city="Little Rock", state="AR", zip="72211")


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool) -> dict:
    applier = Applier(pool)
    tenants = TenantServices(pool, applier)
    partner = (await tenants.create_partner(PartnerCreate(name="Numbers Co", tier=PartnerTier.STARTER))).id
    other = (await tenants.create_partner(PartnerCreate(name="Rival", tier=PartnerTier.BUSINESS))).id
    t1 = (await tenants.create_tenant(partner, TenantCreate(name="Acme", billing_email="a@b.co", sip_prefix="nacme"))).id
    t2 = (await tenants.create_tenant(partner, TenantCreate(name="Beta", billing_email="a@b.co", sip_prefix="nbeta"))).id
    ext = await NumberingServices(pool, applier).create_extension(partner, t1, ExtensionCreate(number="101",
                                                                                                display_name="A"))
    for p in (partner, other):
        await active_funded(pool, p, 50_000_000)
    numbers = NumberServices(pool, None)
    assert await numbers.load_inventory(INVENTORY) == 121
    assert await numbers.load_inventory(INVENTORY) == 0
    return {"numbers": numbers, "e911": E911Services(numbers), "partner": partner, "other": other, "t1": t1,
            "t2": t2, "ext": ext.id, "ports": PortServices(numbers, SecretBox("k" * 32))}


async def test_local_search_filters_and_prices(world: dict) -> None:
    n: NumberServices = world["numbers"]
    found = await n.search_local(world["partner"], "ar", "479", None, None, None, 20)
    assert [a.number for a in found][:2] == ["+14794440000", "+14794440001"] and len(found) == 10
    assert found[0].monthly_price_micros == 1_750_000 and found[0].setup_fee_micros == 1_000_000
    assert found[0].per_minute_micros == 20_000 and found[0].currency == "USD"
    assert found[0].region == "Fort Smith, AR" and found[0].rate_center == "FTSMITH"
    assert len(await n.search_local(world["partner"], "AR", None, None, None, "little rock", 100)) == 100
    with pytest.raises(Problem) as err:
        await n.search_local(world["partner"], None, None, None, None, None)
    assert err.value.status == 422 and err.value.field == "state"


async def test_toll_free_regular_and_vanity(world: dict) -> None:
    n: NumberServices = world["numbers"]
    assert len(await n.search_toll_free(world["partner"], None, 10)) == 10
    food = await n.search_toll_free(world["partner"], "8XX-OUR-FOOD", 10)
    assert [a.number for a in food] == ["+18776873663"] and food[0].monthly_price_micros == 2_500_000
    assert [a.number for a in await n.search_toll_free(world["partner"], "888-XXX-1000")] == ["+18885551000"]
    with pytest.raises(Problem) as err:
        await n.search_toll_free(world["partner"], "501-555-XXXX")
    assert err.value.field == "pattern"


async def test_a_number_bought_twice_at_once_goes_to_one_buyer(world: dict, pool: asyncpg.Pool) -> None:
    n: NumberServices = world["numbers"]
    results = await asyncio.gather(n.purchase(world["partner"], ["+15015550050"]),
                                   n.purchase(world["other"], ["+15015550050"]), return_exceptions=True)
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Problem)]
    assert len(won) == 1 and len(lost) == 1 and lost[0].status == 409
    assert await pool.fetchval("SELECT count(*) FROM dids WHERE number = '+15015550050'") == 1


async def test_purchase_charges_the_setup_fee_and_records_the_monthly_price(world: dict, pool: asyncpg.Pool) -> None:
    n: NumberServices = world["numbers"]
    before = await pool.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1", world["partner"])
    result = await n.purchase(world["partner"], ["+15015550001", "5015550002"])
    assert result.setup_total_micros == 2_000_000 and result.monthly_total_micros == 3_500_000
    assert result.wallet_balance_micros == before - 2_000_000
    assert all(d.status == "ACTIVE" and d.monthly_price_micros == 1_750_000 for d in result.numbers)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'phone_number.purchased'"
                               " AND partner_id = $1", world["partner"]) >= 2
    assert "+15015550001" not in [a.number for a in await n.search_local(world["partner"], "AR", "501", None,
                                                                         None, None, 100)]


async def test_purchase_refused_when_the_wallet_is_short(world: dict, pool: asyncpg.Pool) -> None:
    """The wallet is checked and debited before the carrier is asked: a short wallet never reaches it."""
    balance = await pool.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1", world["other"])
    await fund(pool, world["other"], 500 - balance, note="bring the wallet down to 500 micro-units")
    carrier = RecordingCarrier()
    with pytest.raises(Problem) as err:
        await NumberServices(pool, None, carrier=carrier).purchase(world["other"], ["+15015550060"])
    assert err.value.code == "insufficient_funds"
    assert carrier.ordered == []
    assert await pool.fetchval("SELECT sold_to FROM number_inventory WHERE number = '+15015550060'") is None
    assert await pool.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1", world["other"]) == 500


async def test_purchase_posts_one_setup_entry_per_number_before_the_carrier_order(
        world: dict, pool: asyncpg.Pool) -> None:
    carrier = RecordingCarrier(pool=pool, partner_id=world["partner"])
    result = await NumberServices(pool, None, carrier=carrier).purchase(world["partner"],
                                                                        ["+15015550070", "+15015550071"])
    # When the carrier was asked, the purchase had written its setup entries already.
    assert carrier.ordered == [["+15015550070", "+15015550071"]] and carrier.ledger_written
    rows = await pool.fetch("SELECT kind, amount, reference FROM wallet_entries WHERE partner_id = $1"
                            " AND reference = ANY($2::text[]) ORDER BY reference", world["partner"],
                            [f"setup:{d.id}" for d in result.numbers])
    assert [(r["kind"], r["amount"]) for r in rows] == [("setup_fee", -1_000_000)] * 2
    assert await ledger_mismatches(pool) == []


async def test_a_carrier_failure_rolls_the_setup_debit_back(world: dict, pool: asyncpg.Pool) -> None:
    before = await pool.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1", world["partner"])
    with pytest.raises(RuntimeError):
        await NumberServices(pool, None, carrier=RecordingCarrier(fail=True)).purchase(world["partner"],
                                                                                      ["+15015550072"])
    assert await pool.fetchval("SELECT balance FROM partner_wallets WHERE partner_id = $1",
                               world["partner"]) == before
    assert await pool.fetchval("SELECT sold_to FROM number_inventory WHERE number = '+15015550072'") is None


async def test_a_trial_partner_buys_without_a_setup_entry(world: dict, pool: asyncpg.Pool) -> None:
    """Nothing is drawn in trial: activation charges setup:<did id> later (the account capability)."""
    trial = (await TenantServices(pool, Applier(pool)).create_partner(
        PartnerCreate(name="Trial Co", tier=PartnerTier.STARTER))).id
    async with pool.acquire() as conn:
        assert await wallet_store.in_trial(conn, trial)
    carrier = RecordingCarrier()
    result = await NumberServices(pool, None, carrier=carrier).purchase(trial, ["+15015550073"])
    assert carrier.ordered == [["+15015550073"]] and result.wallet_balance_micros == 0
    assert await pool.fetchval("SELECT count(*) FROM wallet_entries WHERE partner_id = $1", trial) == 0


class RecordingCarrier(BuiltinCarrier):
    """The builtin carrier, noting each order (and the setup entries already written by then)."""

    def __init__(self, *, pool: asyncpg.Pool | None = None, partner_id: str | None = None,
                 fail: bool = False) -> None:
        super().__init__()
        self.ordered: list[list[str]] = []
        self.ledger_written = False
        self._pool, self._partner, self._fail = pool, partner_id, fail

    async def order(self, numbers):  # type: ignore[no-untyped-def]
        self.ordered.append(list(numbers))
        if self._fail:
            raise RuntimeError("carrier down")
        if self._pool is not None:
            # The entries are not committed yet (same transaction), so another connection cannot
            # read them; what it can see is that the buyer's transaction has written wallet_entries.
            self.ledger_written = bool(await self._pool.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " WHERE c.relname = 'wallet_entries' AND l.mode = 'RowExclusiveLock'"
                " AND l.pid <> pg_backend_pid()"))
        return await super().order(numbers)


async def _bought(world: dict, *numbers: str) -> list[str]:
    return [d.id for d in (await world["numbers"].purchase(world["partner"], list(numbers))).numbers]


async def test_assign_route_release_and_the_did_limit(world: dict, pool: asyncpg.Pool) -> None:
    n: NumberServices = world["numbers"]
    a, b = await _bought(world, "+15015550010", "+15015550011")
    did = await n.assign(world["partner"], a, world["t1"], world["ext"])
    assert did.tenant_id == world["t1"] and did.extension_id == world["ext"] and did.tenant_name == "Acme"
    await pool.execute("INSERT INTO tenant_limits (tenant_id, max_dids) VALUES ($1, (SELECT count(*) FROM dids"
                       " WHERE tenant_id = $1)) ON CONFLICT (tenant_id) DO UPDATE SET max_dids = EXCLUDED.max_dids",
                       world["t1"])
    with pytest.raises(Problem) as err:
        await n.assign(world["partner"], b, world["t1"], None)
    assert (err.value.status, err.value.code, err.value.field) == (409, "usage_limit", "max_dids")
    await pool.execute("UPDATE tenant_limits SET max_dids = NULL WHERE tenant_id = $1", world["t1"])
    released = await n.release(world["partner"], a)
    assert released.status == "RELEASED" and released.billing_since is None and released.tenant_id is None
    types = [r["type"] for r in await pool.fetch("SELECT type FROM events WHERE partner_id = $1 ORDER BY seq",
                                                 world["partner"])]
    assert "phone_number.assigned" in types and "phone_number.released" in types


async def test_bulk_dry_run_then_apply(world: dict) -> None:
    e: E911Services = world["e911"]
    ids = await _bought(world, "+15015550020", "+15015550021", "+15015550022")
    dry = await e.bulk(world["partner"], BulkRequest(action="assign", ids=ids, tenant_id=world["t2"], dry_run=True))
    assert dry.dry_run and dry.changed == 3 and not any(i.applied for i in dry.items)
    assert (await world["numbers"].get(world["partner"], ids[0])).tenant_id is None
    done = await e.bulk(world["partner"], BulkRequest(action="assign", ids=ids, tenant_id=world["t2"]))
    assert done.changed == 3 and all(i.applied for i in done.items)
    again = await e.bulk(world["partner"], BulkRequest(action="assign", ids=ids, tenant_id=world["t2"]))
    assert again.changed == 0 and again.skipped == 3
    e911 = await e.bulk(world["partner"], BulkRequest(action="e911", ids=ids, address=ADDRESS))
    assert e911.changed == 3 and all("REGISTERED" in i.change for i in e911.items)
    rel = await e.bulk(world["partner"], BulkRequest(action="release", ids=ids[:2]))
    assert rel.changed == 2


async def test_e911_validation_registration_and_compliance(world: dict) -> None:
    e: E911Services = world["e911"]
    (a,) = await _bought(world, "+15015550030")
    await world["numbers"].assign(world["partner"], a, world["t1"], None)
    with pytest.raises(Problem) as err:
        await e.register(world["partner"], a, E911Address(street="1 Main St", city="St. Louis", state="MO",
                                                           zip="63101"))
    assert err.value.status == 422 and err.value.field == "address.city" and "Saint Louis" in err.value.detail
    with pytest.raises(Problem) as err:
        await e.register(world["partner"], a, E911Address(street="PO Box 12", city="Anytown", state="AR",
                                                           zip="72211"))
    assert err.value.field == "address.street"
    report = await e.compliance(world["partner"], "NOT_SET", world["t1"])
    assert a in [r.id for r in report.items]
    (done,) = await e.register(world["partner"], a, ADDRESS)
    assert done.e911_status == "REGISTERED" and done.e911_address and done.e911_address.unit == "Suite 200"
    everyone = await e.register(world["partner"], a, ADDRESS, apply_to_tenant=True)
    assert len(everyone) >= 1 and all(d.e911_status == "REGISTERED" for d in everyone)
    report = await e.compliance(world["partner"], None, world["t1"])
    assert report.by_status["NOT_SET"] == 0
    page, _ = await world["numbers"].list_numbers(world["partner"], PageRequest(100, None), tenant_id=None,
                                                  status=None, e911_status="REGISTERED", q="acme")
    assert a in [d.id for d in page]


async def test_cnam_override_sync_status_and_refusal(world: dict) -> None:
    (a,) = await _bought(world, "+15015550040")
    did = await world["numbers"].set_cnam(world["partner"], a, "O'Brien & Co.")
    assert did.cnam == "O'Brien & Co." and did.cnam_status == "SYNCED" and did.effective_cnam == "O'Brien & Co."
    with pytest.raises(Problem) as err:
        await world["numbers"].set_cnam(world["partner"], a, "X" * 16)
    assert err.value.field == "cnam"


async def test_port_lifecycle_completes_into_active_assigned_numbers(world: dict, pool: asyncpg.Pool) -> None:
    ports: PortServices = world["ports"]
    port = await ports.create(world["partner"], PortCreate(
        numbers=["+12025550100", "+12025550101"], losing_carrier="Verizon", account_holder="Acme LLC",
        account_number="123-456", pin="4321", service_address=ADDRESS, tenant_id=world["t1"],
        desired_date=date(2026, 6, 1)))
    assert port.status == "PENDING" and port.has_pin
    assert b"4321" not in bytes(await pool.fetchval("SELECT pin_sealed FROM port_requests WHERE id = $1", port.id))
    assert await ports.pin(world["partner"], port.id) == "4321"
    with pytest.raises(Problem) as err:
        await ports.act(world["partner"], port.id, "submit", PortAction())
    assert err.value.code == "documents_missing"
    with pytest.raises(Problem) as err:
        await ports.add_document(world["partner"], port.id, "LOA", "loa.pdf", "application/pdf", b"not a pdf")
    assert err.value.field == "body"
    await ports.add_document(world["partner"], port.id, "LOA", "loa.pdf", "application/pdf", b"%PDF-1.7 ...")
    await ports.add_document(world["partner"], port.id, "BILL", "bill.png", "image/png", b"\x89PNG\r\n\x1a\n...")
    with pytest.raises(Problem) as err:
        await ports.act(world["partner"], port.id, "complete", PortAction())
    assert err.value.status == 409 and err.value.code == "illegal_transition"
    await ports.act(world["partner"], port.id, "submit", PortAction())
    rejected = await ports.act(world["partner"], port.id, "reject", PortAction(reason="name mismatch"))
    assert rejected.status == "REJECTED" and rejected.reject_reason == "name mismatch"
    await ports.act(world["partner"], port.id, "resubmit", PortAction())
    foc = await ports.act(world["partner"], port.id, "foc", PortAction(foc_date=date(2026, 6, 3)))
    assert foc.foc_date == date(2026, 6, 3)
    done = await ports.act(world["partner"], port.id, "complete", PortAction())
    assert done.status == "COMPLETED"
    rows = await pool.fetch("SELECT status, tenant_id FROM dids WHERE number = ANY($1::text[])", done.numbers)
    assert len(rows) == 2 and all(r["status"] == "ACTIVE" and r["tenant_id"] == world["t1"] for r in rows)
    with pytest.raises(Problem):
        await ports.act(world["partner"], port.id, "cancel", PortAction())
    kinds = {r["type"] for r in await pool.fetch("SELECT type FROM events WHERE type LIKE 'port_request.%'")}
    assert {"port_request.created", "port_request.submitted", "port_request.rejected",
            "port_request.foc_received", "port_request.completed"} <= kinds


async def test_an_e911_street_with_a_newline_is_422_naming_it_and_changes_nothing(world: dict) -> None:
    e: E911Services = world["e911"]
    (a,) = await _bought(world, "+15015550031")
    await world["numbers"].assign(world["partner"], a, world["t1"], None)
    (before,) = await e.register(world["partner"], a, ADDRESS)
    for street in ("1234 Main St\nApt 5", "1234 Main St\r\n", "1234\tMain St"):
        with pytest.raises(Problem) as err:
            await e.register(world["partner"], a, E911Address(street=street, city="Little Rock", state="AR",
                                                               zip="72211"))
        assert (err.value.status, err.value.field) == (422, "address.street"), street
    report = await e.compliance(world["partner"], None, world["t1"])
    (after,) = [d for d in report.items if d.id == a]
    assert after.e911_status == before.e911_status == "REGISTERED"
