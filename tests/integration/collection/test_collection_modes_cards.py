"""The partner's Stripe mode and tenants' cards, over HTTP on PostgreSQL and localstripe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from localstripe_support import CARD_DECLINED, CARD_OK

from collection_world import USD, World
from controlplane.collection import charges
from controlplane.collection.rules import StripeMode

CUSTOM_KEY = "sk_test_partnerOwnKey4242AbCdEfGh9Z7q"


async def test_the_default_mode_is_platform_and_shows_no_secret(world: World) -> None:
    partner = await world.partner()
    status, mode = await world.call("GET", "/v1/account/stripe", partner)
    assert status == 200
    assert mode["mode"] == "platform" and mode["application_fee_rate"] == "0.0399"
    assert mode["settlement"] == {"collected_micros": 0, "fees_micros": 0, "refunded_micros": 0, "owed_micros": 0,
                                  "currency": "USD"}


async def test_a_custom_key_is_encrypted_at_rest_and_never_shown_again(world: World) -> None:
    partner = await world.partner()
    status, mode = await world.call("PUT", "/v1/account/stripe", partner, {
        "mode": "custom_keys", "custom_keys": {"secret_key": CUSTOM_KEY, "publishable_key": "pk_test_partner12345678"}})
    assert status == 200, mode
    assert mode["mode"] == "custom_keys" and mode["secret_key_last4"] == "9Z7q"
    assert mode["application_fee_rate"] == "0"
    status, again = await world.call("GET", "/v1/account/stripe", partner)
    assert CUSTOM_KEY not in str(again) and "secret_key" not in again
    row = await world.pool.fetchrow("SELECT * FROM collection_modes WHERE partner_id = $1", partner)
    assert row is not None
    everything = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
    assert CUSTOM_KEY.encode() not in everything and CUSTOM_KEY[8:].encode() not in everything
    assert len(row["secret_key_sealed"]) >= 12 + len(CUSTOM_KEY) + 16  # nonce + ciphertext + GCM tag
    # The change is audited, the key not in it.
    audited = await world.pool.fetch("SELECT action, resource, changes::text AS changes FROM audit_events"
                                     " WHERE partner_id = $1 AND resource = 'stripe_mode'", partner)
    assert [a["action"] for a in audited] == ["update"]
    assert CUSTOM_KEY not in audited[0]["changes"] and "custom_keys" in audited[0]["changes"]
    # Only the resolved processor opens it: the provider charges with the partner's own key.
    built = await world.resolver().for_partner(world.pool, partner)
    assert built.mode is StripeMode.CUSTOM_KEYS
    assert getattr(built.provider, "secret_key") == CUSTOM_KEY
    # A ciphertext copied onto another partner's row does not open there.
    other = await world.partner()
    await world.pool.execute(
        "INSERT INTO collection_modes (partner_id, mode, secret_key_sealed, secret_key_last4)"
        " VALUES ($1, 'custom_keys', $2, '9Z7q')", other, row["secret_key_sealed"])
    try:
        await world.resolver().for_partner(world.pool, other)
        raise AssertionError("a sealed key opened on another partner's row")
    except Exception as exc:  # cryptography's InvalidTag
        assert type(exc).__name__ == "InvalidTag"


async def test_bad_mode_input_is_a_422_naming_every_field_and_changes_nothing(world: World) -> None:
    partner = await world.partner()
    status, problem = await world.call("PUT", "/v1/account/stripe", partner, {
        "mode": "custom_keys", "custom_keys": {"secret_key": "4242424242424242", "publishable_key": "nope"}})
    assert status == 422
    assert sorted(e["field"] for e in problem["errors"]) == ["custom_keys.publishable_key", "custom_keys.secret_key"]
    status, problem = await world.call("PUT", "/v1/account/stripe", partner, {"mode": "connect"})
    assert status == 422 and problem["errors"][0]["field"] == "connect"
    assert (await world.call("GET", "/v1/account/stripe", partner))[1]["mode"] == "platform"


async def test_a_card_is_saved_through_a_setup_intent_and_announced(world: World) -> None:
    partner = await world.partner()
    tenant = await world.tenant(partner)
    status, intent = await world.call("POST", f"/v1/tenants/{tenant}/payment-methods/setup-intent", partner)
    assert status == 201
    assert intent["setup_intent_id"].startswith("seti_") and intent["secrets"]["client_secret"].startswith("seti_")
    assert intent["mode"] == "platform" and intent["stripe_account"] is None
    first = await world.save_card(partner, tenant, CARD_OK)
    second = await world.save_card(partner, tenant, CARD_OK)
    status, page = await world.call("GET", f"/v1/tenants/{tenant}/payment-methods", partner)
    assert status == 200
    assert [(m["id"], m["is_default"]) for m in page["items"]] == [(first, True), (second, False)]
    assert page["items"][0]["last4"] == "4242" and page["items"][0]["tenant_id"] == tenant
    attached = await world.events(partner, "payment_method.attached")
    assert [e["data"]["id"] for e in attached] == [first, second]
    assert attached[0]["data"]["payer"] == "tenant" and attached[0]["row_tenant_id"] == tenant
    # Stripe holds the card on the tenant's customer.
    customer = await world.pool.fetchval("SELECT customer_id FROM collection_customers WHERE tenant_id = $1", tenant)
    assert world.stripe.client().v1.payment_methods.retrieve(first).customer == customer
    # Attaching the same card again changes nothing; another tenant cannot take it.
    status, _ = await world.call("POST", f"/v1/tenants/{tenant}/payment-methods", partner,
                                 {"payment_method_id": first})
    assert status == 200
    other = await world.tenant(partner)
    status, problem = await world.call("POST", f"/v1/tenants/{other}/payment-methods", partner,
                                       {"payment_method_id": first})
    assert status == 409
    # Default and delete.
    status, made = await world.call("POST", f"/v1/tenants/{tenant}/payment-methods/{second}/default", partner)
    assert status == 200 and made["is_default"] is True
    assert (await world.call("DELETE", f"/v1/tenants/{tenant}/payment-methods/{second}", partner))[0] == 204
    page = (await world.call("GET", f"/v1/tenants/{tenant}/payment-methods", partner))[1]
    assert [(m["id"], m["is_default"]) for m in page["items"]] == [(first, True)]


async def test_card_input_is_checked_and_other_partners_tenants_are_not_found(world: World) -> None:
    partner = await world.partner()
    tenant = await world.tenant(partner)
    status, problem = await world.call("POST", f"/v1/tenants/{tenant}/payment-methods", partner,
                                       {"payment_method_id": "4242424242424242"})
    assert status == 422 and problem["errors"][0]["field"] == "payment_method_id"
    stranger = await world.partner()
    status, _ = await world.call("POST", f"/v1/tenants/{tenant}/payment-methods/setup-intent", stranger)
    assert status == 404
    # A card Stripe refuses on attach is a 402 with its code, and nothing is saved.
    refused = world.stripe.card(CARD_DECLINED)
    status, problem = await world.call("POST", f"/v1/tenants/{tenant}/payment-methods", partner,
                                       {"payment_method_id": refused})
    assert status == 402 and problem["code"] == "card_declined"
    assert (await world.call("GET", f"/v1/tenants/{tenant}/payment-methods", partner))[1]["items"] == []


async def test_custom_keys_charge_through_the_partners_key(world: World) -> None:
    partner = await world.partner()
    tenant = await world.tenant(partner)
    await world.call("PUT", "/v1/account/stripe", partner,
                     {"mode": "custom_keys", "custom_keys": {"secret_key": CUSTOM_KEY}})
    await world.save_card(partner, tenant, CARD_OK)
    invoice = await world.issue(partner, tenant, [("base_fee", 99 * USD)])
    assert (await world.invoice(invoice.id)).status.value == "PAID"
    row = await world.pool.fetchrow("SELECT mode, account, application_fee_micros FROM collection_charges"
                                    " WHERE invoice_id = $1", invoice.id)
    assert row["mode"] == "custom_keys" and row["account"].startswith("custom:")
    assert row["application_fee_micros"] == 0  # seed 003: no application fee in custom mode


async def test_switching_mode_leaves_cards_of_the_old_account_uncharged(world: World) -> None:
    partner = await world.partner()
    tenant = await world.tenant(partner)
    await world.save_card(partner, tenant, CARD_OK)
    await world.call("PUT", "/v1/account/stripe", partner,
                     {"mode": "custom_keys", "custom_keys": {"secret_key": CUSTOM_KEY}})
    assert (await world.call("GET", f"/v1/tenants/{tenant}/payment-methods", partner))[1]["items"] == []
    invoice = await world.issue(partner, tenant, [("base_fee", 10 * USD)])
    assert (await world.invoice(invoice.id)).status.value == "SENT"
    [failed] = await world.events(partner, "payment.failed")
    assert failed["data"]["code"] == "no_payment_method" and failed["data"]["payer"] == "tenant"
    # The sweeper sees a tenant with a card (at the old account) and an uncharged invoice: it
    # charges nothing and does not announce the failure again.
    await charges.sweep(world.pool, world.resolver(), world.signals, datetime.now(UTC) + timedelta(minutes=1))
    assert len(await world.events(partner, "payment.failed")) == 1
    assert (await world.invoice(invoice.id)).status.value == "SENT"


async def test_connect_charges_on_the_connected_account_with_the_application_fee(world: World) -> None:
    """localstripe cannot emulate Connect: it ignores Stripe-Account and refuses
    application_fee_amount. Its refusal names the field, which proves the adapter sent the fee
    on a real request; the rest of Connect is asserted at the interface (unit tests)."""
    partner = await world.partner()
    tenant = await world.tenant(partner)
    status, mode = await world.call("PUT", "/v1/account/stripe", partner,
                                    {"mode": "connect", "connect": {"account_id": "acct_1PartnerConnected"}})
    assert status == 200 and mode["connect_account_id"] == "acct_1PartnerConnected"
    status, intent = await world.call("POST", f"/v1/tenants/{tenant}/payment-methods/setup-intent", partner)
    assert status == 201 and intent["stripe_account"] == "acct_1PartnerConnected"
    await world.save_card(partner, tenant, CARD_OK)
    invoice = await world.issue(partner, tenant, [("base_fee", 100 * USD)])
    row = await world.pool.fetchrow("SELECT status, account, application_fee_micros, decline_message"
                                    " FROM collection_charges WHERE invoice_id = $1", invoice.id)
    assert row["account"] == "connect:acct_1PartnerConnected"
    assert row["application_fee_micros"] == 3_990_000
    assert row["status"] == "DECLINED" and "application_fee_amount" in row["decline_message"]
    outcome = await charges.collect(world.pool, world.resolver(), world.signals, invoice_id=invoice.id, attempt=1)
    assert outcome.status == "declined"  # a refused attempt is not sent again


async def test_a_tenant_scoped_key_reaches_its_tenants_invoices_only(world: World) -> None:
    partner = await world.partner()
    mine, other = await world.tenant(partner), await world.tenant(partner)
    status, key = await world.call("POST", "/v1/api-keys", partner, {
        "name": "mine only", "scopes": ["billing:write"], "tenant_ids": [mine]})
    assert status == 201, key
    headers = {"Authorization": f"Bearer {key['secrets']['key']}"}
    own = await world.issue(partner, mine, [("base_fee", 10 * USD)])
    theirs = await world.issue(partner, other, [("base_fee", 10 * USD)])
    body = {"amount_micros": 10 * USD, "reference": "K-1"}
    resp = await world.client.post(f"/v1/invoices/{theirs.id}/payments", json=body, headers=headers)
    assert resp.status == 404
    resp = await world.client.post(f"/v1/tenants/{other}/payment-methods/setup-intent", headers=headers)
    assert resp.status == 404
    resp = await world.client.post(f"/v1/invoices/{own.id}/payments", json=body, headers=headers)
    assert resp.status == 201
    assert (await world.invoice(theirs.id)).paid_micros == 0
