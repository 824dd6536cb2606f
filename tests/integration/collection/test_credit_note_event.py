"""``credit_note.issued``: once per credit note, when it gets its number (a retried refund with
the same reference, and the sweeper, add none), delivered as a signed webhook."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from billing_events_support import hook

from collection_world import USD, World
from controlplane.collection.refunds import Refunds


async def test_a_credit_note_is_announced_once_when_numbered_and_delivered_signed(
        world: World, database_dsn: str) -> None:
    partner = await world.partner()
    tenant = await world.tenant(partner)
    invoice = await world.issue(partner, tenant, [("base_fee", 30 * USD), ("minutes_local", 10 * USD)])
    status, _ = await world.call("POST", f"/v1/invoices/{invoice.id}/payments", partner,
                                 {"amount_micros": 40 * USD, "reference": "CASH-1"})
    assert status in (200, 201)
    async with hook(database_dsn, partner, "credit_note.issued") as webhook:
        body = {"amount_micros": 20 * USD, "reference": "R-1", "reason": "goodwill"}
        status, note = await world.call("POST", f"/v1/invoices/{invoice.id}/refunds", partner, body)
        assert status == 201 and note["number"] == "CN-000001"
        status, again = await world.call("POST", f"/v1/invoices/{invoice.id}/refunds", partner, body)
        assert status in (200, 201) and again["id"] == note["id"]
        await Refunds(world.pool, world.resolver()).resume_stale(datetime.now(UTC) + timedelta(minutes=1))
        status, second = await world.call("POST", f"/v1/invoices/{invoice.id}/refunds", partner,
                                          {"amount_micros": 5 * USD, "credit_usage": False})
        assert status == 201 and second["number"] == "CN-000002"
        delivered = await webhook.delivered(2)
        await asyncio.sleep(0.5)  # nothing else arrives
        assert len(webhook.bodies()) == 2
    assert [e["row_tenant_id"] for e in await world.events(partner, "credit_note.issued")] == [tenant, tenant]
    first, other = sorted(delivered, key=lambda b: b["data"]["number"])
    assert first["type"] == "credit_note.issued" and first["partner_id"] == partner
    assert first["data"] == {"credit_note_id": note["id"], "number": "CN-000001", "invoice_id": invoice.id,
                             "tenant_id": tenant, "amount_micros": 20 * USD, "usage_credit_micros": 5 * USD,
                             "currency": "USD", "reason": "goodwill"}
    assert other["data"]["credit_note_id"] == second["id"] and other["data"]["usage_credit_micros"] == 0
