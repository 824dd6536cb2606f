"""The cycle job against PostgreSQL and localstripe: unit fees to the wallet (full at cycle start,
prorated by day when added, released units stop), the monthly fee to the card with its invoice,
run twice = charged once, declined fees retried daily."""

from __future__ import annotations

from datetime import UTC, datetime

from account_world import World
from localstripe_support import CARD_DECLINED_ON_CHARGE
from wallet_support import ledger_mismatches

from controlplane.account.jobs import run_cycle
from controlplane.payments.charges import idempotency_key


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def units(world: World, pid: str) -> dict[str, str]:
    """A tenant with 3 extensions (one made before activation) and 2 DIDs (one unassigned)."""
    tenant = await world.call("POST", "/v1/tenants", partner=pid, json={"name": "Dental", "billing_email": "b@x.co"})
    assert tenant.status == 201, tenant.body
    tid = tenant.body["id"]
    ids = {}
    for name, number, created in (("ext_early", "101", "2027-03-01T09:00"), ("ext_mid", "102", "2027-03-20T15:00"),
                                  ("ext_gone", "103", "2027-03-02T00:00")):
        r = await world.call("POST", f"/v1/tenants/{tid}/extensions", partner=pid,
                             json={"number": number, "display_name": name})
        assert r.status == 201, r.body
        ids[name] = r.body["id"]
        await world.pool.execute("UPDATE extensions SET created_at = $2 WHERE id = $1", r.body["id"], at(created))
    suffix = pid[-6:]
    for name, kind, tenant_id, created in (("did_local", "local", None, "2027-02-01T00:00"),
                                          ("did_tf", "toll_free", tid, "2027-03-25T12:00")):
        did_id = f"{name}_{suffix}"
        number = ("+1501" if kind == "local" else "+1888") + str(abs(hash(did_id)) % 10**7).rjust(7, "0")
        await world.pool.execute(
            "INSERT INTO dids (id, partner_id, number, status, kind, tenant_id, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)", did_id, pid, number, "ACTIVE" if tenant_id else "RELEASED",
            kind, tenant_id, at(created))
        ids[name] = did_id
    ids["tenant"] = tid
    return ids


async def fees(world: World, pid: str) -> dict[str, tuple[str, int, str | None]]:
    rows = await world.pool.fetch("SELECT reference, kind, amount, tenant_id FROM wallet_entries"
                                  " WHERE partner_id = $1 AND reference LIKE 'fee:%'", pid)
    return {r["reference"]: (r["kind"], r["amount"], r["tenant_id"]) for r in rows}


async def test_unit_fees_prorated_in_the_month_of_activation_full_at_the_next_once_each(world: World) -> None:
    pid = await world.partner("STARTER")
    ids = await units(world, pid)
    await world.services.activate(pid, now=at("2027-03-10T08:00"), comp_reason="test", invoiced=False)
    await world.pool.execute("DELETE FROM extensions WHERE id = $1", ids["ext_gone"])  # released before the job
    for _ in range(2):  # twice: one set
        await run_cycle(world.pool, world.provider, at("2027-03-26T10:00"))
    march = await fees(world, pid)
    t = ids["tenant"]
    assert march == {
        # made before activation: billed from activation day (Mar 10: 22 of 31 days), 3.00 -> 2.13
        f"fee:2027-03:ext:{ids['ext_early']}": ("monthly_extension", -2_130_000, t),
        # added on the 20th: 12/31 of 3.00 = 1.1613 -> 1.16
        f"fee:2027-03:ext:{ids['ext_mid']}": ("monthly_extension", -1_160_000, t),
        # unassigned DID, in the inventory: charged from activation, 1.75 x 22/31 = 1.2419 -> 1.24
        f"fee:2027-03:did:{ids['did_local']}": ("monthly_did_local", -1_240_000, None),
        # toll-free added on the 25th: 2.50 x 7/31 = 0.5645 -> 0.56
        f"fee:2027-03:did:{ids['did_tf']}": ("monthly_did_toll_free", -560_000, t),
    }
    # no card fee in the month of activation (the prorated fee belongs to activation)
    assert await world.pool.fetchval("SELECT count(*) FROM account_dues WHERE partner_id = $1", pid) == 0

    # April: a unit released in March stops; the others pay the full fee at cycle start
    await world.pool.execute("DELETE FROM extensions WHERE id = $1", ids["ext_mid"])
    await world.card(pid)
    for _ in range(2):
        await run_cycle(world.pool, world.provider, at("2027-04-01T00:01"))
    april = {k: v for k, v in (await fees(world, pid)).items() if k.startswith("fee:2027-04")}
    assert april == {
        f"fee:2027-04:ext:{ids['ext_early']}": ("monthly_extension", -3_000_000, t),
        f"fee:2027-04:did:{ids['did_local']}": ("monthly_did_local", -1_750_000, None),
        f"fee:2027-04:did:{ids['did_tf']}": ("monthly_did_toll_free", -2_500_000, t),
    }
    # the month's platform fee: charged once to the card, with its invoice
    assert len(world.stripe.intents_for(idempotency_key(pid, "sub:2027-04"))) == 1
    invoices = (await world.call("GET", "/v1/account/invoices", partner=pid)).body["items"]
    [monthly] = [i for i in invoices if i["purpose"] == "monthly"]
    assert (monthly["cycle"], monthly["amount_micros"], monthly["tier"]) == ("2027-04", 249_000_000, "STARTER")
    [paid] = await world.events(pid, "invoice.paid")
    assert paid["number"] == monthly["number"]
    total = await world.pool.fetchval("SELECT sum(amount) FROM wallet_entries WHERE partner_id = $1", pid)
    assert await world.balance(pid) == total
    assert await ledger_mismatches(world.pool) == []


async def test_a_declined_monthly_fee_emits_payment_failed_and_is_retried_once_a_day(world: World) -> None:
    pid = await world.partner("STARTER")
    await world.services.activate(pid, now=at("2027-05-20T08:00"), comp_reason="test", invoiced=False)
    await world.card(pid, CARD_DECLINED_ON_CHARGE)
    for when in ("2027-06-01T00:01", "2027-06-01T12:00"):  # the same day: one attempt
        await run_cycle(world.pool, world.provider, at(when))
    assert len(await world.events(pid, "payment.failed")) == 1
    assert await world.pool.fetchval("SELECT status FROM partners WHERE id = $1", pid) == "ACTIVE"
    due = await world.pool.fetchrow("SELECT status, attempts FROM account_dues WHERE partner_id = $1", pid)
    assert (due["status"], due["attempts"]) == ("DUE", 1)
    await run_cycle(world.pool, world.provider, at("2027-06-02T00:01"))  # the next day: a second attempt
    failed = await world.events(pid, "payment.failed")
    assert len(failed) == 2 and failed[0]["reference"] == "sub:2027-06" and failed[0]["amount_micros"] == 249_000_000
    assert (await world.call("GET", "/v1/account/invoices", partner=pid)).body["items"] == []


async def test_an_invoiced_partner_pays_its_unit_fees_but_no_card_fee(world: World) -> None:
    pid = await world.partner("STARTER")
    await world.services.activate(pid, now=at("2027-07-10T08:00"), comp_reason="invoiced Enterprise")
    await world.card(pid)
    await world.pool.execute("INSERT INTO dids (id, partner_id, number, status, kind, created_at)"
                             " VALUES ($1, $2, '+15015557777', 'RELEASED', 'local', $3)", f"did_inv_{pid[-6:]}",
                             pid, at("2027-07-11T00:00"))
    await run_cycle(world.pool, world.provider, at("2027-08-01T00:01"))
    assert (await world.call("GET", "/v1/account", partner=pid)).body["platform_fee_billing"] == "invoice"
    assert await world.pool.fetchval("SELECT count(*) FROM account_dues WHERE partner_id = $1", pid) == 0
    assert await fees(world, pid) == {f"fee:2027-08:did:did_inv_{pid[-6:]}": ("monthly_did_local", -1_750_000, None)}
